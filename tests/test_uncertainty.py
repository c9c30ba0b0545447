"""What z does not store (issue 22 item 4): ``soda.api.uncertainty`` decodes one latent with K noise seeds and maps
the per-pixel standard deviation. Checked against a known answer: a decoder whose image depends on the starting noise
in one region R and only on z elsewhere must light the map up exactly on R. Then the app's endpoint through
gradio_client."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import app_server, read

from soda import api
from soda.config import SODAConfig
from soda.diffusion.process import x0_to_eps
from soda.diffusion.schedule import alpha_bar
from soda.model import SODA

RES = 16
REGION = (slice(4, 9), slice(2, 11))  # rows, columns where the stub decoder invents detail


def stub_model() -> tuple[SODA, torch.Tensor]:
    """A tiny SODA (eps prediction) whose network predicts the clean image x0 = tanh(first 3 numbers of z) per
    colour channel outside REGION and x0 = 0.9 tanh(x_t) inside it, returned as the eps it implies. The real
    decode path runs (the seeded noise, DDIM, clipping): the last step returns x0-hat, so the image is a function of
    z alone outside REGION and of the starting noise inside it."""
    cfg = SODAConfig.from_yaml("tiny")
    assert cfg.model.diffusion.prediction == "eps" and cfg.model.res == RES
    model = SODA(cfg.model).eval()
    mask = torch.zeros(1, 1, RES, RES, dtype=torch.bool)
    mask[..., REGION[0], REGION[1]] = True
    schedule = cfg.model.diffusion.schedule

    def denoise(x_t, t, zs, rays=None):
        from_z = torch.tanh(zs.flatten(1)[:, :3])[:, :, None, None].expand_as(x_t)
        x0 = torch.where(mask, 0.9 * torch.tanh(x_t), from_z)
        return x0_to_eps(x_t, x0, alpha_bar(t, schedule))

    model.denoise = denoise
    return model, mask[0, 0]


@pytest.mark.parametrize("steps", [1, 4, 10])
def test_the_map_lights_up_exactly_where_the_decoder_ignores_z(steps):
    model, region = stub_model()
    z = torch.randn(1, model.z_dim, generator=torch.Generator().manual_seed(0))
    m = api.uncertainty(model, z, k=8, steps=steps, seed=3)
    assert m.shape == (RES, RES) and m.dtype == torch.float32
    assert float(m[~region].max()) < 1e-4  # z fixes every pixel there: the 8 decodes agree up to float rounding
    assert float(m[region].min()) > 0.05  # every pixel of R differs between the seeds
    # a known answer for the size too: inside R the decodes are 0.9 tanh of (nearly) standard normal noise, whose std
    # in [0, 1] image units is 0.45 * std(tanh(N(0, 1))) = 0.45 * 0.63 ~ 0.28 (8 draws per pixel scatter around it)
    assert 0.18 < float(m[region].mean()) < 0.38


def test_the_map_does_not_depend_on_z_where_z_is_ignored_and_is_deterministic():
    model, region = stub_model()
    za, zb = torch.randn(2, model.z_dim, generator=torch.Generator().manual_seed(1))
    a, b = api.uncertainty(model, za, 8, steps=2, seed=0), api.uncertainty(model, zb, 8, steps=2, seed=0)
    assert torch.equal(a, api.uncertainty(model, za, 8, steps=2, seed=0))
    assert torch.allclose(a, b, atol=1e-4)  # the noise decides R, whatever z is
    assert not torch.equal(a, api.uncertainty(model, za, 8, steps=2, seed=1))  # other seeds, other draws


def test_one_seed_is_refused():
    model, _ = stub_model()
    with pytest.raises(ValueError, match="at least 2"):
        api.uncertainty(model, torch.zeros(model.z_dim), k=1, steps=2)


def test_the_heat_map_scale():
    from app.explorer_uncertainty import FULL_SCALE, heat

    img = heat(np.array([[0.0, 0.5, 1.0, 2.0]]))
    assert img.shape == (1, 4, 3) and img.dtype == np.uint8
    assert img[0, 0].tolist() == [0, 0, 0] and img[0, 2].tolist() == img[0, 3].tolist() == [255, 255, 255]
    assert 0 < FULL_SCALE < 1


# ------------------------------------------------------------------------------------------------------------
# The app: Explore / edit's button, and its endpoint
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    return app_server()


def test_the_uncertainty_endpoint(server):
    from gradio_client import Client

    c = Client(server[0], verbose=False)
    assert "/uncertainty" in c.view_api(return_format="dict", print_info=False)["named_endpoints"]
    _, _, edited, _ = c.predict(1, api_name="/load_example")
    heat, note = c.predict(8, api_name="/uncertainty")
    img = read(heat)
    assert img.shape == read(edited).shape  # beside the image, pixel for pixel
    assert "8 noise seeds" in note and "z does not pin down" in note
    assert img.max() > 0  # a random tiny decoder invents plenty


def test_the_map_uses_the_full_quality_steps_even_for_a_preview(server):
    """A one-step decode is the decoder's mean guess: its map would be flat. The map takes the full steps."""
    _, ex, _, _ = server
    m = ex.get()
    assert ex.what_z.steps(m, "preview") == ex.what_z.steps(m, "full") == ex.steps(m, "full")
    assert ex.what_z.steps(m, "reference") == m.model.cfg.diffusion.sample_steps
