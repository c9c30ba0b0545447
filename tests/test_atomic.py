"""soda.atomic: a failure injected at every step leaves the previous file or folder exactly as it was and nothing
hidden behind; a crash state is repaired in both directions."""

from __future__ import annotations

import os
import stat

import pytest

from soda import atomic


def _tree(folder):
    return {p.relative_to(folder).as_posix(): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def _hidden(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


class Boom(RuntimeError):
    pass


def _fail_nth_replace(monkeypatch, n):
    """os.replace raises on its n-th call (1-based) in soda.atomic."""
    real = os.replace
    calls = {"n": 0}

    def replace(a, b):
        calls["n"] += 1
        if calls["n"] == n:
            raise Boom(f"injected failure at os.replace #{n}")
        return real(a, b)

    monkeypatch.setattr(atomic.os, "replace", replace)
    return calls


def test_write_file_round_trip_and_mode(tmp_path):
    p = atomic.write_json(tmp_path / "sub" / "a.json", {"x": 1})
    assert p.read_text() == '{\n  "x": 1\n}'
    assert oct(p.stat().st_mode & 0o777) == "0o644"
    atomic.write_bytes(p, b"new")
    assert p.read_bytes() == b"new" and _hidden(p.parent) == []


@pytest.mark.parametrize("where", ["writer", "replace"])
def test_write_file_failure_keeps_previous(tmp_path, monkeypatch, where):
    p = tmp_path / "a.txt"
    p.write_text("old")

    def writer(tmp):
        tmp.write_text("half")
        if where == "writer":
            raise Boom("disk full")

    if where == "replace":
        _fail_nth_replace(monkeypatch, 1)
    with pytest.raises(Boom):
        atomic.write_file(p, writer)
    assert p.read_text() == "old" and _hidden(tmp_path) == []


def _old_folder(tmp_path):
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "weights").write_text("old weights")
    (d / "README.md").write_text("card")
    (d / "explorer").mkdir()
    (d / "explorer" / "assets.json").write_text("{}")
    return d


def _fill(tmp):
    (tmp / "weights").write_text("new weights")


def test_replace_dir_keeps_others(tmp_path):
    d = _old_folder(tmp_path)
    atomic.replace_dir(d, _fill, keep_others=True)
    assert _tree(d) == {"weights": "new weights", "README.md": "card", "explorer/assets.json": "{}"}
    assert _hidden(tmp_path) == []
    atomic.replace_dir(d, _fill)  # without keep_others the folder is exactly the new content
    assert _tree(d) == {"weights": "new weights"}


@pytest.mark.parametrize("step", ["fill", 1, 2, 3, 4])
def test_replace_dir_failure_at_every_step_restores(tmp_path, monkeypatch, step):
    """Steps: fill, then the os.replace calls in order (2 kept files moved, folder aside, new folder in)."""
    d = _old_folder(tmp_path)
    before = _tree(d)

    def fill(tmp):
        _fill(tmp)
        if step == "fill":
            raise Boom("fill failed")

    if step != "fill":
        calls = _fail_nth_replace(monkeypatch, step)
    with pytest.raises(Boom):
        atomic.replace_dir(d, fill, keep_others=True)
    if step != "fill":
        assert calls["n"] >= step  # the failure really was injected at that step
    monkeypatch.undo()
    assert _tree(d) == before and _hidden(tmp_path) == []


def test_replace_dir_new_folder_failure_leaves_nothing(tmp_path, monkeypatch):
    _fail_nth_replace(monkeypatch, 1)
    with pytest.raises(Boom):
        atomic.replace_dir(tmp_path / "new", _fill)
    assert list(tmp_path.iterdir()) == []


def _crash_state(tmp_path, new_complete: bool):
    """What a kill -9 between 'folder aside' and 'new folder in' leaves: no folder, .old and .tmp siblings."""
    d = _old_folder(tmp_path)
    tmp = tmp_path / ".ckpt.tmp-x"
    tmp.mkdir()
    if new_complete:
        _fill(tmp)
    (d / "README.md").rename(tmp / "README.md")  # a kept file already moved into the new folder
    os.replace(d, tmp_path / ".ckpt.old-1")
    return d


@pytest.mark.parametrize("new_complete", [True, False])
def test_recover_dir(tmp_path, new_complete):
    d = _crash_state(tmp_path, new_complete)
    assert atomic.recover_dir(d, complete=lambda f: (f / "weights").is_file())
    want = "new weights" if new_complete else "old weights"
    assert _tree(d) == {"weights": want, "README.md": "card", "explorer/assets.json": "{}"}
    assert _hidden(tmp_path) == []
    assert not atomic.recover_dir(d, complete=lambda f: True)  # nothing left to repair


def test_remove_dir_and_is_writable(tmp_path):
    d = _old_folder(tmp_path)
    atomic.remove_dir(d)
    assert list(tmp_path.iterdir()) == []
    assert atomic.is_writable(tmp_path / "not" / "yet")
    assert not atomic.is_writable(tmp_path / "hub" / "models--a--b" / "snapshots" / "abc")


def test_replace_dir_leaves_shared_file_modes(tmp_path):
    """A writer that creates its file private (safetensors goes through a 0600 temp file) still leaves a folder
    anyone may read: the explorer's assets were left 0600 after a rewrite (issue 25)."""

    def fill(tmp):
        (tmp / "a.bin").write_bytes(b"x")
        os.chmod(tmp / "a.bin", 0o600)

    out = atomic.replace_dir(tmp_path / "d", fill)
    assert stat.S_IMODE((out / "a.bin").stat().st_mode) == 0o644
