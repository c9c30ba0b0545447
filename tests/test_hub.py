"""Hub checkpoints: the page opens none by default, only allow-listed ids (SODA_HUB_CHECKPOINTS / --allow-hub), each
measured before download and refused over the limit; the command line's --checkpoint is free. No network: an
allow-listed id is served from a local hub cache laid out as huggingface_hub writes it (HF_HUB_OFFLINE=1), and the
size checks run against a fake hub (its file metadata and download function replaced)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import SimpleNamespace

import huggingface_hub
import pytest
import torch
from helpers import make_tiny_checkpoint
from huggingface_hub import constants
from huggingface_hub.hf_api import RepoSibling

from app.explorer import Explorer, ExplorerError
from soda import api
from soda.config import ConfigError
from soda.model import resolve_checkpoint

ROOT = Path(__file__).resolve().parents[1]
REPO = "someone/tiny-soda"
SHA = "0123456789abcdef0123456789abcdef01234567"
MB = 1 << 20


class _Stop(Exception):
    pass


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("hub") / "tiny")


@pytest.fixture
def hub_cache(ckpt, tmp_path, monkeypatch) -> Path:
    """A local hub cache holding REPO at SHA (refs/main -> SHA, the files in snapshots/SHA), as the hub client
    leaves it after a download; offline, snapshot_download serves it from there."""
    cache = tmp_path / "hf-cache"
    snap = cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / SHA
    snap.mkdir(parents=True)
    for f in ("config.json", "model.safetensors"):
        shutil.copy(ckpt / f, snap / f)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text(SHA)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("SODA_CACHE", str(tmp_path / "soda-cache"))  # explorer assets (never inside the hub cache)
    return snap


@pytest.fixture
def fake_hub(monkeypatch):
    """An online hub whose repository REPO lists ``files`` {name: size}; records every download."""
    hub = SimpleNamespace(files={"config.json": 2_000, "model.safetensors": 1 * MB, "README.md": 500}, downloads=[])

    def model_info(self, repo_id, *, files_metadata=False, **kw):
        assert files_metadata, "sizes need files_metadata=True"
        if repo_id != REPO:
            raise huggingface_hub.errors.RepositoryNotFoundError(f"404 {repo_id}")
        return SimpleNamespace(sha=SHA, siblings=[RepoSibling(n, size=s) for n, s in hub.files.items()])

    def snapshot_download(repo_id, *, revision=None, allow_patterns=None, **kw):
        hub.downloads.append({"repo": repo_id, "revision": revision, "allow_patterns": allow_patterns})
        return "/nonexistent/snapshot"

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return hub


# ------------------------------------------------------------------------------------------------------------
# The page: off by default, allow-listed ids only
# ------------------------------------------------------------------------------------------------------------


def test_hub_ids_typed_in_the_page_are_refused_by_default(ckpt, monkeypatch):
    ex = Explorer(str(ckpt), n_map=16, n_examples=4)
    monkeypatch.setattr("soda.api.load_model", lambda *a, **k: pytest.fail("nothing may be loaded"))
    for key in (REPO, "openai/clip-vit-base-patch32", " someone/tiny-soda "):
        with pytest.raises(ExplorerError) as err:
            ex.check_choice(key)
        msg = str(err.value)
        assert "not allowed on this server" in msg and "SODA_HUB_CHECKPOINTS" in msg and "\n" not in msg, msg
    assert ex.check_choice(str(ckpt)) == str(ckpt)  # the command line's checkpoint stays open
    assert not ex.any_hub and ex._loaded == {}


def test_only_listed_ids_or_star(ckpt):
    listed = Explorer(str(ckpt), hub_ids=[REPO], n_map=16, n_examples=4)
    assert listed.check_choice(REPO) == REPO and REPO in listed.allowed  # offered in the checkpoint box
    with pytest.raises(ExplorerError, match="not allowed on this server"):
        listed.check_choice("someone/other")
    star = Explorer(str(ckpt), hub_ids=["*"], n_map=16, n_examples=4)
    assert star.any_hub and star.check_choice("someone/other") == "someone/other"
    assert "*" not in star.allowed
    with pytest.raises(ExplorerError, match="command line"):  # "*" is about hub ids, never local paths
        star.check_choice("/etc")


def test_an_allow_listed_id_opens_from_the_local_hub_cache(ckpt, hub_cache):
    ex = Explorer(str(ckpt), hub_ids=[REPO], n_map=16, n_examples=4)
    m = ex.get(ex.check_choice(REPO))
    assert Path(m.model.checkpoint_dir) == hub_cache and m.key == REPO
    ref = ex.get()  # the same weights as the command line's folder
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    assert torch.equal(api.encode(m.model, x), api.encode(ref.model, x))
    assert not (hub_cache / "explorer").exists()  # nothing written into the hub cache


def test_an_allow_listed_id_over_the_size_limit_is_refused(ckpt, fake_hub):
    fake_hub.files["model.safetensors"] = 300 * MB
    ex = Explorer(str(ckpt), hub_ids=[REPO], hub_max_mb=200, n_map=16, n_examples=4)
    with pytest.raises(ExplorerError) as err:
        ex.get(ex.check_choice(REPO))
    msg = str(err.value)
    assert "refused" in msg and "300.0 MB" in msg and "limit of 200 MB" in msg and "\n" not in msg, msg
    assert fake_hub.downloads == [] and REPO not in ex._loaded


def test_the_command_line_checkpoint_is_not_size_checked(monkeypatch):
    seen = []

    def load_model(key, device, max_download_mb=None):
        seen.append((key, max_download_mb))
        raise _Stop

    monkeypatch.setattr("soda.api.load_model", load_model)
    ex = Explorer(REPO, hub_ids=["*"], hub_max_mb=1, n_map=16, n_examples=4)
    for key in (REPO, "someone/else"):
        with pytest.raises(_Stop):
            ex.get(key)
    assert seen == [(REPO, None), ("someone/else", 1)]  # --checkpoint is free; one opened from the page is not


# ------------------------------------------------------------------------------------------------------------
# The library: the size is measured on the hub's file metadata before anything is fetched
# ------------------------------------------------------------------------------------------------------------


def test_size_limit_counts_only_the_files_fetched_and_pins_the_commit(fake_hub):
    fake_hub.files["pytorch_model.bin"] = 5000 * MB  # never downloaded (not a *.json/*.safetensors/*.md), not counted
    fake_hub.files["optimizer.pt"] = 900 * MB
    assert resolve_checkpoint(REPO, max_hub_bytes=2 * MB) == Path("/nonexistent/snapshot")
    assert fake_hub.downloads == [
        {"repo": REPO, "revision": SHA, "allow_patterns": ["*.json", "*.safetensors", "*.md"]}
    ]
    fake_hub.files["extra.safetensors"] = 2 * MB  # now 3 MB of matching files
    with pytest.raises(ConfigError, match=r"refused: 3\.0 MB to download is over .* limit of 2 MB"):
        resolve_checkpoint(REPO, max_hub_bytes=2 * MB)
    assert len(fake_hub.downloads) == 1


def test_unknown_sizes_and_unknown_repos_are_refused(fake_hub):
    fake_hub.files["model.safetensors"] = None
    with pytest.raises(ConfigError, match="does not report the size of model.safetensors"):
        resolve_checkpoint(REPO, max_hub_bytes=200 * MB)
    with pytest.raises(ConfigError, match="could not be fetched from the hub"):
        resolve_checkpoint("nobody/nothing", max_hub_bytes=200 * MB)
    assert fake_hub.downloads == []


def test_without_a_limit_nothing_is_measured(fake_hub, monkeypatch):
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda *a, **k: pytest.fail("no metadata call"))
    assert resolve_checkpoint(REPO) == Path("/nonexistent/snapshot")
    assert fake_hub.downloads == [
        {"repo": REPO, "revision": None, "allow_patterns": ["*.json", "*.safetensors", "*.md"]}
    ]


# ------------------------------------------------------------------------------------------------------------
# The launcher: --allow-hub / SODA_HUB_CHECKPOINTS and --hub-max-mb / SODA_HUB_MAX_MB reach the explorer
# ------------------------------------------------------------------------------------------------------------


def _launch(argv, monkeypatch) -> dict:
    import app.explorer

    seen = {}

    def fake_explorer(checkpoint, **kw):
        seen.update(kw, checkpoint=checkpoint)
        raise _Stop

    spec = importlib.util.spec_from_file_location("soda_app_launcher_hub", ROOT / "app.py")
    launcher = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launcher)
    monkeypatch.setattr(app.explorer, "Explorer", fake_explorer)
    threads = torch.get_num_threads()
    try:
        with pytest.raises(_Stop):
            launcher.main(argv)
    finally:
        torch.set_num_threads(threads)
    return seen


def test_launcher_flags_and_environment(ckpt, monkeypatch):
    monkeypatch.delenv("SODA_HUB_CHECKPOINTS", raising=False)
    monkeypatch.delenv("SODA_HUB_MAX_MB", raising=False)
    off = _launch(["--checkpoint", str(ckpt)], monkeypatch)
    assert off["hub_ids"] == [] and off["hub_max_mb"] == 200
    monkeypatch.setenv("SODA_HUB_CHECKPOINTS", f"{REPO}, other/one ,")
    monkeypatch.setenv("SODA_HUB_MAX_MB", "50")
    env = _launch(["--checkpoint", str(ckpt)], monkeypatch)
    assert env["hub_ids"] == [REPO, "other/one"] and env["hub_max_mb"] == 50
    flag = _launch(["--checkpoint", str(ckpt), "--allow-hub", "*", "--hub-max-mb", "10"], monkeypatch)
    assert flag["hub_ids"] == ["*"] and flag["hub_max_mb"] == 10


def test_the_no_network_guard_sees_the_hub_client(no_network, monkeypatch):
    """Control for the ``no_network`` fixture (conftest.py) that other tests use instead of wall-clock bounds."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(ConfigError, match="could not be fetched"):
        resolve_checkpoint("someone/not-cached-anywhere", max_hub_bytes=MB)
    assert no_network and no_network[0].startswith(("lookup", "connect")), no_network
