"""Shared test settings: offline hubs, passive OpenMP waiting, small thread counts, a tiny model factory."""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh explorer-asset cache (SODA_CACHE) in the test's temp dir -> its path."""
    monkeypatch.setenv("SODA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


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


@pytest.fixture
def quick_factor_classifiers(monkeypatch, tmp_path):
    """soda.clip.factors' ground-truth factor classifiers trained briefly, in a temp cache (mechanics, not accuracy):
    for tests of code that measures edits on decoded images (soda.eval.edits, soda.sliders)."""
    from soda.clip import factors

    real = factors.load_or_train_factor_classifiers

    def quick(res, cache=None, progress=None, **kw):
        kw = {"n_train": 200, "n_test": 50, "steps": 15, "batch_size": 16, **kw}
        return real(res, tmp_path / "factor-classifiers", progress, **kw)

    monkeypatch.setattr(factors, "load_or_train_factor_classifiers", quick)
    return quick


LOOPBACK = ("127.", "::1", "localhost")


@pytest.fixture
def no_network(monkeypatch):
    """Refuse (and record) every connection and name lookup beyond loopback, so a test can assert that a code path
    never waits on the network: a direct check, where a wall-clock bound would depend on the machine's speed."""
    import socket

    attempts: list[str] = []
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        host = str(address[0]) if isinstance(address, tuple) else str(address)
        if self.family == socket.AF_UNIX or host.startswith(LOOPBACK):
            return real_connect(self, address)
        attempts.append(f"connect {host}")
        raise OSError(f"network disabled by the no_network fixture ({host})")

    def getaddrinfo(host, *args, **kw):
        if host is None or str(host).startswith(LOOPBACK):
            return real_getaddrinfo(host, *args, **kw)
        attempts.append(f"lookup {host}")
        raise socket.gaierror(f"network disabled by the no_network fixture ({host})")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


def tiny_folder_cfg(data, *more):
    """The `tiny` preset on an image folder (no cameras, augmentation views); ``more``: further overrides."""
    from soda.config import SODAConfig

    return SODAConfig.from_yaml(
        "tiny",
        [
            f"--data.path={data}",
            "--data.dataset=folder",
            "--data.mode=augment",
            "--model.encoder.use_rays=false",
            "--model.unet.use_rays=false",
            *more,
        ],
    )
