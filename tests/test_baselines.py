"""Baselines trained by the same trainer: beta-VAE and plain autoencoder."""

import itertools

import pytest
import torch

from soda.config import ConfigError, SODAConfig
from soda.data.streams import make_stream
from soda.model import SODA, load_pretrained
from soda.train import train
from soda.training.samples import held_out_loss


@pytest.mark.parametrize("kind", ["ae", "vae"])
def test_baseline_overfits_and_round_trips(kind, tmp_path):
    cfg = SODAConfig.from_yaml(
        "tiny",
        [
            f"--model.kind={kind}",
            "--model.beta=0.1",
            "--train.steps=60",
            "--train.lr=3e-3",
            f"--train.out_dir={tmp_path}",
            "--train.ckpt_every=60",
        ],
    )
    batch = {k: v[:4] for k, v in next(make_stream(cfg)).items()}
    from soda.model import build_model

    torch.manual_seed(0)
    before = held_out_loss(build_model(cfg.model), batch)
    out = train(cfg, stream=itertools.repeat(batch), quiet=True)
    after = held_out_loss(out["model"], batch)
    assert after < before / 3, (before, after)
    loaded = load_pretrained(tmp_path / "ema")
    assert loaded.cfg.kind == kind
    z = loaded.encode(batch["src"], batch["src_rays"])
    assert z.shape == (4, cfg.model.latent.z_dim)
    assert torch.equal(z, out["ema"].eval().encode(batch["src"], batch["src_rays"]))
    img = loaded.decode(z, batch["tgt_rays"])
    assert img.shape == batch["tgt"].shape and img.abs().max() <= 1
    with pytest.raises(ConfigError, match=f"a '{kind}' checkpoint, expected soda"):
        SODA.from_pretrained(tmp_path / "ema")
