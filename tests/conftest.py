"""Shared test settings: offline hubs, passive OpenMP waiting, small thread counts, a tiny model factory."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def tiny_cfg(tmp_path):
    """The `tiny` preset with its run folder in a temp dir."""
    from soda.config import SODAConfig

    return SODAConfig.from_yaml("tiny", [f"--train.out_dir={tmp_path / 'run'}"])


def randomise_output_layer(model) -> None:
    """Give the zero-initialised output conv random weights (so the network output depends on its input)."""
    torch.manual_seed(123)
    for p in model.unet.out[-1].parameters():
        torch.nn.init.normal_(p, std=0.1)


def tiny_model_with_visible_z():
    """A tiny random SODA whose output depends on z (output conv and z modulations randomised), eval mode."""
    from soda.config import SODAConfig
    from soda.model import SODA

    torch.manual_seed(0)
    m = SODA(SODAConfig.from_yaml("tiny").model)
    randomise_output_layer(m)
    for blk in m.modules():
        if hasattr(blk, "z_mod") and blk.z_mod is not None:
            torch.nn.init.normal_(blk.z_mod.weight, std=0.5)
    return m.eval()
