"""Typed config: presets load, overrides apply, bad values are named."""

import pytest

from soda.config import PRESET_DIR, ConfigError, SODAConfig


@pytest.mark.parametrize("name", ["tiny", "world32-cpu", "world64-gpu"])
def test_presets_load(name):
    cfg = SODAConfig.from_yaml(name)
    assert cfg.model.latent.z_dim % cfg.model.sections == 0
    assert SODAConfig.from_dict(cfg.to_dict()) == cfg


def test_folder_preset_needs_a_path():
    with pytest.raises(ConfigError, match="'data.path' is required"):
        SODAConfig.from_yaml(PRESET_DIR / "folder.yaml")
    cfg = SODAConfig.from_yaml("folder", ["--data.path=/some/images"])
    assert cfg.data.mode == "augment" and not cfg.model.encoder.use_rays


def test_overrides_and_types():
    cfg = SODAConfig.from_yaml("tiny", ["--train.steps=7", "--model.unet.channel_mult=[1,2]", "--train.lr=1e-3"])
    assert cfg.train.steps == 7 and cfg.model.unet.channel_mult == (1, 2) and cfg.train.lr == 1e-3


@pytest.mark.parametrize(
    "override, message",
    [
        ("--train.stpes=5", r"unknown config field 'train.stpes' \(did you mean 'train.steps'\?\)"),
        ("--model.latent.z_dim=21", r"'model.latent.z_dim' \(21\) must be divisible by the number of sections \(5\)"),
        ("--train.lr=fast", r"'train.lr' must be a number"),
        ("--train.steps=2.5", r"'train.steps' must be an integer"),
        ("--model.diffusion.schedule=sigmoid", r"'model.diffusion.schedule' must be"),
        ("--model.latent.p_section=1.5", r"'model.latent.p_section' must be in \[0, 1\)"),
        ("--data.res=64", r"'data.res' must equal model.res"),
        ("--train", r"must look like --section.key=value"),
    ],
)
def test_bad_values_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        SODAConfig.from_yaml("tiny", [override])


def test_missing_preset_lists_presets(tmp_path):
    with pytest.raises(ConfigError, match="presets: .*tiny"):
        SODAConfig.from_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        SODAConfig.from_yaml(bad)
