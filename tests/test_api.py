"""soda.api: deterministic decoding, edits, interpolation and section mixing on a tiny model."""

from pathlib import Path

import pytest
import torch
from conftest import tiny_model_with_visible_z

from soda import api


@pytest.fixture(scope="module")
def model():
    return tiny_model_with_visible_z()


def test_decode_is_deterministic_and_in_range(model):
    z = torch.randn(2, model.z_dim)
    a = api.decode(model, z, steps=4, seed=3)
    b = api.decode(model, z, steps=4, seed=3)
    assert torch.equal(a, b) and a.shape == (2, 3, 16, 16)
    assert a.min() >= -1 and a.max() <= 1
    assert not torch.equal(a, api.decode(model, z, steps=4, seed=4))


def test_rows_are_independent_of_batch_composition(model):
    z = torch.randn(3, model.z_dim)
    batch = api.decode(model, z, steps=3)
    single = api.decode(model, z[1:2], steps=3)
    assert torch.allclose(batch[1:2], single, atol=2e-3)  # batched kernels differ in rounding only


def test_camera_changes_the_image(model):
    z = torch.randn(1, model.z_dim)
    a = api.decode(model, z, camera=api.Camera(-40, 20, 4.0), steps=3)
    b = api.decode(model, z, camera=api.Camera(40, 20, 4.0), steps=3)
    assert (a - b).abs().max() > 1e-3


def test_encode_shape_and_default_camera(model):
    x = torch.rand(5, 3, 16, 16) * 2 - 1
    z = api.encode(model, x)
    assert z.shape == (5, model.z_dim)
    assert torch.equal(z, api.encode(model, x, camera=api.default_camera()))


def test_section_directions_are_unit_std_and_confined():
    class M:
        n_sections, section_dim = 2, 3

    torch.manual_seed(0)
    Z = torch.randn(4000, 6) * torch.tensor([3.0, 0.1, 0.1, 1.0, 1.0, 1.0])
    dirs = api.section_directions(M(), Z, n_components=2)
    d0 = dirs[0][0]
    assert d0[3:].abs().max() == 0  # confined to section 0
    assert d0.norm().item() == pytest.approx(3.0, rel=0.05)  # one std of the dominant axis
    assert d0[0].abs() / d0.norm() > 0.99


def test_interpolate_endpoints_and_sections(model):
    a, b = torch.randn(model.z_dim), torch.randn(model.z_dim)
    for method in ("lerp", "slerp"):
        path = api.interpolate(model, a, b, 5, method)
        assert torch.allclose(path[0], a, atol=1e-5) and torch.allclose(path[-1], b, atol=1e-5)
    only = api.interpolate(model, a, b, 3, "lerp", sections=[1])
    sl = api.section_slices(model)[1]
    assert torch.allclose(only[-1][sl], b[sl]) and torch.equal(only[-1][: sl.start], a[: sl.start])


def test_mix_sections(model):
    a, b = torch.zeros(model.z_dim), torch.ones(model.z_dim)
    out = api.mix_sections(model, a, b, [True, False, False, False, True])
    assert out[: model.section_dim].eq(1).all() and out[model.section_dim : 4 * model.section_dim].eq(0).all()
    with pytest.raises(ValueError, match="expected 5 section choices"):
        api.mix_sections(model, a, b, [True])


def _stub_network(model, cond: float, uncond: float, calls: list):
    """A network whose output is ``cond`` everywhere for a row conditioned on z and ``uncond`` for a null row."""

    def net(x_t, t, zs, rays=None):
        calls.append(x_t.shape[0])
        is_null = (zs == model.null_sections(zs.shape[0])).flatten(1).all(1)
        return torch.where(is_null[:, None, None, None], uncond, cond).expand_as(x_t).to(x_t.dtype)

    return net


@pytest.mark.parametrize("prediction", ["eps", "v"])
def test_guided_denoiser_gives_the_known_mix(model, prediction):
    """eps = eps_c + w (eps_c - eps_u) exactly, in one batched network call; w = 0 calls the network once, on z."""
    from soda.diffusion import to_eps
    from soda.diffusion.guidance import guided_denoiser
    from soda.diffusion.schedule import alpha_bar

    b, w = 2, 1.5
    zs = model.sections(torch.randn(b, model.z_dim))
    x, t = torch.randn(b, 3, 16, 16), torch.full((b,), 0.7)
    ab = alpha_bar(t, "inverted_cosine")
    calls: list = []
    net = _stub_network(model, 0.25, -0.5, calls)
    eps = guided_denoiser(net, zs, model.null_sections(b), None, w, "inverted_cosine", prediction)(x, t)
    e_c = to_eps(torch.full_like(x, 0.25), x, ab, prediction)
    e_u = to_eps(torch.full_like(x, -0.5), x, ab, prediction)
    assert torch.equal(eps, e_c + w * (e_c - e_u)) and calls == [2 * b]
    if prediction == "eps":
        assert torch.allclose(eps, torch.full_like(x, 0.25 + w * 0.75))  # 1.375, by hand
    calls.clear()
    plain = guided_denoiser(net, zs, model.null_sections(b), None, 0.0, "inverted_cosine", prediction)(x, t)
    assert torch.equal(plain, e_c) and calls == [b]


def test_decode_applies_guidance_with_the_known_answer(model, monkeypatch):
    """One DDIM step from t = 1 returns x0 = (x - sqrt(1 - ab) eps) / sqrt(ab), clipped, with the guided eps."""
    from soda.diffusion import to_eps
    from soda.diffusion.schedule import alpha_bar

    monkeypatch.setattr(model, "denoise", _stub_network(model, 0.02, -0.01, []))
    z = torch.randn(1, model.z_dim)
    d = model.cfg.diffusion
    noise = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    ab = alpha_bar(torch.ones(1), d.schedule)
    for w in (0.0, 2.0):
        e_c = to_eps(torch.full_like(noise, 0.02), noise, ab, d.prediction)
        e_u = to_eps(torch.full_like(noise, -0.01), noise, ab, d.prediction)
        eps = e_c + w * (e_c - e_u)
        want = ((noise - (1 - ab).sqrt() * eps) / ab.sqrt()).clamp(-1, 1)
        got = api.decode(model, z, steps=1, seed=5, guidance=w)
        assert torch.allclose(got, want, atol=1e-6), (w, float((got - want).abs().max()))


def test_per_row_noise(model):
    """Shared noise (the default): every row of a batch of one repeated z is the same image. Per-row noise: rows
    differ, and the first row is the image decoded alone (one row gets the same noise either way)."""
    z = torch.randn(1, model.z_dim).expand(3, -1)
    shared = api.decode(model, z, steps=3, seed=1)
    own = api.decode(model, z, steps=3, seed=1, per_row_noise=True)
    assert torch.allclose(shared[0], shared[2], atol=2e-3)
    assert (own[0] - own[2]).abs().max() > 0.05
    assert torch.allclose(own[:1], api.decode(model, z[:1], steps=3, seed=1, per_row_noise=True), atol=2e-3)


def test_uint8_round_trip():
    x = torch.randint(0, 256, (2, 4, 4, 3), dtype=torch.uint8).numpy()
    assert (api.to_uint8(api.from_uint8(x)) == x).all()


# ------------------------------------------------------------------------------------------------------------
# Finding a checkpoint by name, from any working folder
# ------------------------------------------------------------------------------------------------------------

BUNDLED = Path(__file__).resolve().parents[1] / "assets" / "checkpoints" / "world32"


def test_load_model_with_no_argument_is_the_bundled_checkpoint_from_any_folder(tmp_path, monkeypatch):
    if not (BUNDLED / "model.safetensors").is_file():
        pytest.skip("the bundled checkpoint is not in this checkout")
    monkeypatch.delenv("SODA_CHECKPOINTS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no assets/ here
    (tmp_path / "world32").mkdir()  # a same-named folder of the working directory is not what "no argument" means
    assert api.load_model().checkpoint_dir == BUNDLED
    assert api.load_model(max_download_mb=1).checkpoint_dir == BUNDLED


def test_a_name_is_a_folder_of_the_checkpoints_root_and_a_local_folder_comes_first(tmp_path, monkeypatch):
    from helpers import make_tiny_checkpoint

    from soda.config import ConfigError

    make_tiny_checkpoint(tmp_path / "root" / "mine")
    monkeypatch.setenv("SODA_CHECKPOINTS_DIR", str(tmp_path / "root"))
    monkeypatch.chdir(tmp_path)
    assert api.load_model("mine").checkpoint_dir == tmp_path / "root" / "mine"
    make_tiny_checkpoint(tmp_path / "mine", seed=1)  # a folder of the working directory is a path, as before
    assert api.load_model("mine").checkpoint_dir == Path("mine")
    with pytest.raises(ConfigError, match=r"'other' not found.*no folder 'other' in .*root \(it has: mine\)"):
        api.load_model("other")
    with pytest.raises(ConfigError, match="no folder 'world32'.*SODA_CHECKPOINTS_DIR"):
        api.load_model()  # the root points elsewhere: the bundled name is looked up there


def test_a_non_editable_install_says_where_to_put_the_checkpoint(tmp_path, monkeypatch):
    """A wheel holds soda/ and app/ but not assets/: a name cannot be found, and the error says what to do."""
    import soda.model.io as io
    import soda.paths as paths
    from soda.config import ConfigError

    monkeypatch.delenv("SODA_CHECKPOINTS_DIR", raising=False)
    monkeypatch.setattr(paths, "_REPO", tmp_path / "site-packages")
    assert paths.checkpoints_root() is None
    monkeypatch.chdir(tmp_path)
    for call in (api.load_model, lambda: io.resolve_checkpoint("world32")):
        with pytest.raises(ConfigError) as err:
            call()
        msg = str(err.value)
        assert "'world32' not found" in msg and "no assets/checkpoints beside the soda package" in msg
        assert "pip install -e ." in msg and "SODA_CHECKPOINTS_DIR" in msg and "assets/checkpoints" in msg
