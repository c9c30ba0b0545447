"""The SODA network: shapes, zero-init modulation, masking rates, checkpoints."""

import json

import pytest
import torch
from conftest import randomise_output_layer

from soda.config import ConfigError, SODAConfig
from soda.model import SODA, stage_sections


def _inputs(model, b=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = model.res
    x = torch.rand(b, 3, r, r, generator=g) * 2 - 1
    rays = torch.randn(b, model.enc_rays, r, r, generator=g)
    return x, rays, torch.rand(b, generator=g)


def test_shapes_and_ranges(tiny_cfg):
    model = SODA(tiny_cfg.model).eval()
    x, rays, t = _inputs(model)
    z = model.encode(x, rays)
    assert z.shape == (4, tiny_cfg.model.latent.z_dim) and torch.isfinite(z).all()
    zs = model.sections(z)
    assert zs.shape == (4, model.n_sections, model.section_dim) == (4, 5, 4)
    out = model.denoise(x, t, zs, rays)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_stage_sections_cover_all_sections():
    assert stage_sections(3, 7) == [0, 1, 2, 3, 4, 5, 6]
    assert stage_sections(3, 1) == [0] * 7
    assert sorted(set(stage_sections(3, 3))) == [0, 1, 2]


def test_z_has_no_effect_at_init_then_does_after_one_step(tiny_cfg):
    torch.manual_seed(0)
    model = SODA(tiny_cfg.model)
    randomise_output_layer(model)
    x, rays, t = _inputs(model)
    za = model.sections(torch.randn(4, model.z_dim))
    zb = model.sections(torch.randn(4, model.z_dim))
    with torch.no_grad():
        assert torch.equal(model.denoise(x, t, za, rays), model.denoise(x, t, zb, rays))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    loss = model({"src": x, "tgt": x, "src_rays": rays, "tgt_rays": rays})  # the training loss of a batch
    loss.backward()
    opt.step()
    with torch.no_grad():
        diff = (model.denoise(x, t, za, rays) - model.denoise(x, t, zb, rays)).abs().max()
    assert diff > 1e-4


def test_masking_rates_match_config(tiny_cfg):
    model = SODA(tiny_cfg.model)
    with torch.no_grad():
        model.null.fill_(7.0)
    zs = torch.zeros(20000, model.n_sections, model.section_dim)
    out = model.mask_sections(zs, torch.Generator().manual_seed(0))
    masked = (out[..., 0] == 7.0).float()  # (B, K)
    all_masked = masked.all(dim=1).float().mean().item()
    p_s, p_d, k = 0.2, 0.1, model.n_sections
    # a section is masked by its own coin or by the whole-z drop
    assert masked.mean().item() == pytest.approx(p_s + p_d - p_s * p_d, abs=0.01)
    assert all_masked == pytest.approx(p_d + (1 - p_d) * p_s**k, abs=0.01)


def test_save_load_identical_outputs(tiny_cfg, tmp_path):
    torch.manual_seed(0)
    model = SODA(tiny_cfg.model)
    randomise_output_layer(model)
    model.eval()
    x, rays, t = _inputs(model)
    path = model.save_pretrained(tmp_path / "ckpt", full_config=tiny_cfg)
    loaded = SODA.from_pretrained(path)
    with torch.no_grad():
        a = model.denoise(x, t, model.sections(model.encode(x, rays)), rays)
        b = loaded.denoise(x, t, loaded.sections(loaded.encode(x, rays)), rays)
    assert torch.equal(a, b)
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    # saving again over an existing folder keeps foreign files (a model card) and leaves no temp folders
    (path / "README.md").write_text("card")
    model.save_pretrained(path, full_config=tiny_cfg)
    assert (path / "README.md").read_text() == "card"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt"]


def test_checkpoint_errors_are_clear(tiny_cfg, tmp_path):
    model = SODA(tiny_cfg.model)
    path = model.save_pretrained(tmp_path / "ok", full_config=tiny_cfg)
    with pytest.raises(ConfigError, match="not a local folder and not a valid hub id"):
        SODA.from_pretrained(tmp_path / "missing")
    with pytest.raises(ConfigError, match="no config.json"):
        SODA.from_pretrained(tmp_path)
    meta = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps(meta | {"format_version": 0}))
    with pytest.raises(ConfigError, match="format version 0 is not supported"):
        SODA.from_pretrained(path)
    (path / "config.json").write_text(json.dumps({"model_type": "unet"}))
    with pytest.raises(ConfigError, match="not a SODA checkpoint config"):
        SODA.from_pretrained(path)
    # weights of another architecture
    other = SODAConfig.from_yaml("tiny", ["--model.latent.z_dim=40"])
    SODA(other.model).save_pretrained(tmp_path / "other", full_config=other)
    (tmp_path / "other" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="do not match the architecture|shapes differ"):
        SODA.from_pretrained(tmp_path / "other")
    # a truncated weights file
    (path / "config.json").write_text(json.dumps(meta))
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="not a readable safetensors file"):
        SODA.from_pretrained(path)


def test_spatial_z_and_coords_switches(tiny_cfg):
    """unet.z_spatial adds a zero-initialised z -> (C, S, S) map to the blocks at sizes <= z_spatial (in the z
    pathway's learning-rate group); unet.coords adds a fixed position grid to the decoder input. Both are off by
    default, leaving the paper's decoder (and every older checkpoint's state dict) unchanged."""
    from soda.model.layers import coordinate_grid

    plain = SODA(tiny_cfg.model)
    assert not any(".z_map." in n for n, _ in plain.named_parameters())
    res = tiny_cfg.model.res
    cfg = SODAConfig.from_yaml("tiny", ["--model.unet.z_spatial=1", "--model.unet.coords=true", "--train.out_dir=x"])
    torch.manual_seed(0)
    m = SODA(cfg.model)
    maps = {n: p for n, p in m.named_parameters() if ".z_map." in n}
    assert maps and all(float(p.detach().abs().max()) == 0.0 for p in maps.values())
    # only the lowest level's blocks (tiny: 2 levels, 16 and 8 px) get a map, at that level's resolution
    sizes = {mod.z_map_size for mod in m.unet.modules() if getattr(mod, "z_map", None) is not None}
    assert sizes == {res // 2}
    with pytest.raises(ConfigError, match="z_spatial"):
        SODAConfig.from_yaml("tiny", ["--model.unet.z_spatial=3"])
    assert {id(p) for p in maps.values()} <= {id(p) for p in m.z_parameters()}
    assert m.unet.stem.in_channels == 3 + m.dec_rays + 10
    grid = coordinate_grid(8)
    assert grid.shape == (10, 8, 8) and grid[0, 0, 0] == -grid[0, 0, -1] and grid[1, 0, 0] == -grid[1, -1, 0]
    # with random maps the output depends on z
    randomise_output_layer(m)
    for p in maps.values():
        torch.nn.init.normal_(p, std=0.5)
    x, rays, t = _inputs(m)
    za, zb = m.sections(torch.randn(4, m.z_dim)), m.sections(torch.randn(4, m.z_dim))
    with torch.no_grad():
        d = m.denoise(x, t, za, rays) - m.denoise(x, t, zb, rays)
    assert d.abs().max() > 1e-3
