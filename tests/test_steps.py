"""Decoder steps chosen by measurement (soda.steps, issue 22 item 1): the sharpness measure, the choice from a table
with known answers, the stored choice in the explorer assets' metadata (only that key), and every reader of it: the
API default, the app's renderer, the evaluation's edit step, with the config as fallback and override."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from soda import api, precompute
from soda import steps as S


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from helpers import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny")


class MeanColour:
    """A stand-in for the factor classifiers: per image, which half of the range each channel's mean is in."""

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return (x.mean(dim=(2, 3)) > 0).long()


# ------------------------------------------------------------------------------------------------------------
# Metrics and the choice
# ------------------------------------------------------------------------------------------------------------


def test_sharpness_ratio_sees_blur_and_noise():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    blur = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    assert S.compare(x, x)["hf_ratio"] == 1.0 and S.compare(x, x)["psnr"] == 99.0
    assert S.compare(blur, x)["hf_ratio"] < 0.5  # a blurred image keeps little of the upper half of the band
    smooth = torch.linspace(-1, 1, 32).expand(4, 3, 32, 32)
    assert S.hf_energy(smooth).max() < 1e-3 * S.hf_energy(x).min()
    noisy = (smooth + 0.1 * torch.randn(smooth.shape, generator=g)).clamp(-1, 1)
    assert S.compare(noisy, smooth + 0.01 * torch.randn(smooth.shape, generator=g))["hf_ratio"] > 5
    assert S.compare(x, x, MeanColour().predict)["agreement"] == 1.0


def row(psnr, ssim=0.999, agreement=1.0, hf=1.0):
    return {"psnr": psnr, "psnr_p5": psnr, "ssim": ssim, "agreement": agreement, "hf_ratio": hf}


def table(ddim: dict, dpm: dict, edited_ddim: dict | None = None) -> dict:
    """A measurement whose edited latents give ``edited_ddim`` (both samplers) when given."""
    return {
        "reference": "50-step ddim",
        "table": {
            "held_out": {"ddim": ddim, "dpmpp_2m": dpm},
            "edited": {"ddim": edited_ddim or ddim, "dpmpp_2m": edited_ddim or dpm},
        },
    }


def test_choose_takes_the_fewest_steps_within_tolerances_on_every_set():
    ddim = {"1": row(35.0, ssim=0.95, hf=0.9), "2": row(41.0, ssim=0.991), "4": row(46.0)}
    got = S.choose(table(ddim, ddim))
    assert (got["preview"], got["full"], got["sampler"]) == (1, 2, "ddim")  # a tie: DDIM
    assert got["met"] == {"preview": True, "full": True}
    # the edited latents decide when they are worse: 2 steps lose a factor there
    edited = {**ddim, "2": row(41.0, agreement=0.9)}
    assert S.choose(table(ddim, ddim, edited))["full"] == 4
    # too blurry for a preview: the sharpness bound, not PSNR, decides
    blurry = {**ddim, "1": row(36.0, ssim=0.95, hf=0.7)}
    assert S.choose(table(blurry, blurry))["preview"] == 2


def test_choose_prefers_the_sampler_that_needs_fewer_steps():
    ddim = {"1": row(30.0), "2": row(38.0), "3": row(41.0)}
    dpm = {"1": row(30.0), "2": row(40.5), "3": row(42.0)}
    got = S.choose(table(ddim, dpm))
    assert (got["full"], got["sampler"]) == (2, "dpmpp_2m")


def test_choose_falls_back_when_nothing_meets_the_tolerances():
    bad = {"1": row(20.0), "2": row(25.0)}
    got = S.choose(table(bad, bad), fallback={"preview": 8, "full": 50})
    assert (got["preview"], got["full"], got["sampler"]) == (8, 50, "ddim")
    assert got["met"] == {"preview": False, "full": False}
    only_preview = {"1": row(20.0), "2": row(34.0, ssim=0.95)}
    got = S.choose(table(only_preview, only_preview), fallback={"preview": 8, "full": 50})
    assert (got["preview"], got["full"], got["met"]["full"]) == (2, 50, False)


# ------------------------------------------------------------------------------------------------------------
# Measured, stored, read
# ------------------------------------------------------------------------------------------------------------


def test_measure_compares_held_out_and_edited_decodes_with_the_reference(ckpt):
    model = api.load_model(str(ckpt))
    m = S.measure(model, n_scenes=3, steps=(1, 2, 6), reference_steps=6, classifiers=MeanColour())
    assert set(m["table"]) == {"held_out", "edited"} and m["n_scenes"] == 3 and m["classifiers"]
    for t in m["table"].values():
        assert set(t) == {"ddim", "dpmpp_2m"}
        assert t["ddim"]["6"]["psnr"] == 99.0 and t["ddim"]["6"]["hf_ratio"] == 1.0  # the reference itself
        assert t["ddim"]["1"] == t["dpmpp_2m"]["1"]  # one step of DPM-Solver++ is one step of DDIM
        assert t["ddim"]["1"]["psnr"] < 99.0


def test_edited_latents_move_every_row_by_the_strength_both_ways():
    z = torch.zeros(6, 4)
    dirs = [torch.tensor([1.0, 0, 0, 0]), torch.tensor([0, 1.0, 0, 0])]
    e = S.edited_latents(z, dirs, 2.0)
    assert e.abs().sum(1).tolist() == [2.0] * 6
    assert sorted(e.sum(1).tolist()) == [-2.0, -2.0, -2.0, 2.0, 2.0, 2.0]


def test_ensure_chosen_stores_only_its_key_and_every_reader_uses_it(ckpt, cache, monkeypatch):
    model = api.load_model(str(ckpt))
    assets = precompute.load_or_compute(model, n_examples=4, n_map=32)
    before = json.loads((assets.folder / precompute.META_NAME).read_text())
    d = model.cfg.diffusion  # the tiny preset: 10 full / 4 preview
    assert S.choice(model) == {
        "preview": d.preview_steps,
        "full": d.sample_steps,
        "sampler": "ddim",
        "source": "config",
    }
    small = {"n_scenes": 3, "steps": (1, 2, 3), "reference_steps": 10, "classifiers": MeanColour()}
    assert S.ensure_chosen(model, assets, **small)
    after = json.loads((assets.folder / precompute.META_NAME).read_text())
    assert {k: v for k, v in after.items() if k != S.META_KEY} == before
    got = after[S.META_KEY]
    assert got["tolerances"]["full"]["psnr"] == S.TOLERANCES["full"]["psnr"] and "held_out" in got["table"]
    assert 1 <= got["preview"] <= got["full"]
    assert not S.ensure_chosen(model, assets, **small)  # stored: not measured again
    # a fresh load reads the choice from the stored metadata: the API default, the evaluation's edit step (a known
    # choice written over the measured one: a random tiny decoder meets no tolerance)
    got = {**got, "preview": 1, "full": 2, "sampler": "ddim"}
    (assets.folder / precompute.META_NAME).write_text(json.dumps({**after, S.META_KEY: got}))
    fresh = api.load_model(str(ckpt))
    assert S.choice(fresh)["source"] == "measured" and S.steps_for(fresh, "full") == got["full"]
    assert S.edit_steps(fresh) == got["full"]
    z = torch.randn(1, fresh.z_dim, generator=torch.Generator().manual_seed(0))
    assert torch.equal(api.decode(fresh, z), api.decode(fresh, z, steps=got["full"], sampler=got["sampler"]))
    assert not torch.equal(api.decode(fresh, z), api.decode(fresh, z, steps=d.sample_steps))  # still on request
    # the config's steps as an override, and explicit steps
    monkeypatch.setenv(S.ENV, "config")
    assert S.choice(fresh)["full"] == d.sample_steps and S.edit_steps(fresh) == d.preview_steps
    monkeypatch.setenv(S.ENV, "2,5")
    assert (S.steps_for(fresh, "preview"), S.steps_for(fresh, "full")) == (2, 5)
    monkeypatch.setenv(S.ENV, "many")
    with pytest.raises(ValueError, match=S.ENV):
        S.choice(fresh)


def test_new_tolerances_choose_again_from_the_stored_table(monkeypatch):
    t = table({"1": row(35.0, ssim=0.95, hf=0.9), "2": row(41.0, ssim=0.991)}, {"1": row(35.0), "2": row(41.0)})
    stored = {**S.choose(t), **t}
    assets = SimpleNamespace(meta={S.META_KEY: stored}, folder=None)
    model = SimpleNamespace(cfg=SimpleNamespace(diffusion=SimpleNamespace(preview_steps=8, sample_steps=50)))
    monkeypatch.setattr(S, "measure", lambda *a, **k: pytest.fail("the stored table is enough"))
    assert not S.ensure_chosen(model, assets)
    stricter = {**S.TOLERANCES, "full": {**S.TOLERANCES["full"], "psnr": 45.0}}
    monkeypatch.setattr(S, "TOLERANCES", stricter)
    assert S.ensure_chosen(model, assets)
    assert assets.meta[S.META_KEY]["full"] == 50 and not assets.meta[S.META_KEY]["met"]["full"]


def test_the_precompute_command_adds_the_choice(ckpt, cache, monkeypatch, tmp_path):
    import shutil

    own = tmp_path / "ckpt"
    shutil.copytree(ckpt, own)
    measure = S.measure
    monkeypatch.setattr(
        S,
        "measure",
        lambda model, assets=None, **kw: measure(model, assets, 2, (1, 2), classifiers=MeanColour(), reference_steps=4),
    )
    assert precompute.main([str(own), "--n-map", "32", "--n-examples", "4", "--no-measure"]) == 0
    assert S.META_KEY not in json.loads((own / "explorer" / precompute.META_NAME).read_text())  # --no-measure
    assert precompute.main([str(own), "--n-map", "32", "--n-examples", "4"]) == 0
    meta = json.loads((own / "explorer" / precompute.META_NAME).read_text())
    assert meta[S.META_KEY]["reference"] == "4-step ddim"


def test_the_app_renders_at_the_chosen_steps_and_still_offers_the_reference():
    from app.explorer_render import QUALITIES, REFERENCE, Renderer

    diffusion = SimpleNamespace(preview_steps=8, sample_steps=50)
    model = SimpleNamespace(cfg=SimpleNamespace(diffusion=diffusion), checkpoint_dir=None)
    chosen = {"preview": 1, "full": 3, "sampler": "ddim"}
    m = SimpleNamespace(model=model, assets=SimpleNamespace(meta={S.META_KEY: chosen}))
    assert [Renderer.steps(m, q) for q in QUALITIES] == [1, 3, 50] and REFERENCE in QUALITIES
    assert "1 / 3 / 50 (measured, ddim)" in Renderer.steps_info(m)
    m.assets.meta = {}  # not measured: the config's steps, as before
    assert [Renderer.steps(m, q) for q in QUALITIES] == [8, 50, 50]


def test_a_recipe_records_the_sampler_the_image_was_rendered_with():
    from app.explorer_render import Renderer
    from app.recipes import make_recipe

    diffusion = SimpleNamespace(preview_steps=8, sample_steps=50)
    model = SimpleNamespace(cfg=SimpleNamespace(diffusion=diffusion), checkpoint_dir=None, uses_cameras=False)
    chosen = {"preview": 1, "full": 2, "sampler": "dpmpp_2m"}
    m = SimpleNamespace(model=model, assets=SimpleNamespace(meta={S.META_KEY: chosen}, fingerprint="f"), key="k")
    m.camera = None
    ex = SimpleNamespace(
        current=lambda state: (m, torch.zeros(1, 3)),
        steps=Renderer.steps,
        renderer=Renderer(),
        prompt_directions=lambda m, edits: {},
    )
    recipe = make_recipe(ex, {"z0": [0.0, 0.0, 0.0], "edits": {}}, 0, "full")
    assert (recipe["steps"], recipe["sampler"]) == (2, "dpmpp_2m")


def test_the_edited_latents_follow_every_shown_slider_rotations_included():
    class Turn:  # a z-dependent slider (as soda.sliders.moves.RingRotation): moves itself
        def move(self, z, amount):
            return z.flip(-1) * 0 + amount

    d = torch.tensor([1.0, 0, 0])
    assets = SimpleNamespace(
        free_dirs=torch.stack([d, torch.zeros(3)]),
        free_sliders=lambda: [d, Turn()],
        named_sliders=lambda: [torch.tensor([0, 0, 1.0])],
    )
    got = S.explorer_sliders(assets)
    assert len(got) == 3 and isinstance(got[1], Turn)
    e = S.edited_latents(torch.zeros(3, 3), got)
    assert e[0].tolist() == [2.0, 0, 0] and e[1].tolist() == [-2.0] * 3 and e[2].tolist() == [0, 0, 2.0]
