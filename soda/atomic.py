"""Atomic writes: one file, or one folder, appears complete or not at all.

Every writer in the project goes through these helpers (checkpoints, run state, explorer assets, CLIP caches, media):

- ``write_file(path, writer)`` / ``write_bytes`` / ``write_text`` / ``write_json``: write a hidden temp file in the
  same folder, flush and fsync it, make it world-readable (0644), then ``os.replace`` it over ``path``. A failure at
  any point leaves the previous ``path`` untouched and no temp file.
- ``replace_dir(path, fill, keep_others=...)``: build the new folder in a hidden temp folder, then swap it in with
  two renames (old folder aside, new folder in). A failure at any point, the swap included, puts the previous folder
  back as it was and removes the temp folder. ``keep_others`` moves the previous folder's other files into the new
  one (a checkpoint folder keeps its model card and explorer caches when its weights are replaced).
- ``recover_dir(path, complete)``: after a crash (kill -9, power loss) in ``replace_dir``, finish the swap when the
  new folder was complete, else put the previous one back, and remove the hidden leftovers.
- ``remove_dir(path)``: a folder disappears at once (renamed to a hidden name, then deleted).
- ``is_writable(folder)``: whether a folder (or, when it does not exist yet, its first existing ancestor) may be
  written; never the hub cache's snapshot folders.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = [
    "write_file",
    "write_bytes",
    "write_text",
    "write_json",
    "replace_dir",
    "recover_dir",
    "remove_dir",
    "is_writable",
]


def write_file(path: str | os.PathLike, writer: Callable[[Path], object], suffix: str = "") -> Path:
    """Atomically create or replace ``path``: ``writer(tmp)`` writes the content to the temp path ``tmp`` (in the same
    folder; ``suffix`` keeps an extension that a writer such as PIL reads its format from). -> ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f"{suffix}.tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        writer(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return write_file(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_file(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> Path:
    return write_text(path, json.dumps(obj, indent=indent))


def _hidden(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}")


def replace_dir(
    path: str | os.PathLike,
    fill: Callable[[Path], object],
    keep_others: bool = False,
    protected: Iterable[str] = (),
) -> Path:
    """Atomically create or replace the folder ``path``: ``fill(tmp)`` writes the new content into the empty temp
    folder ``tmp``; then the previous folder (if any) is swapped out. With ``keep_others`` the previous folder's files
    that the new one lacks (and that are not named in ``protected``) move into the new folder first. Any failure
    leaves the previous folder exactly as it was and no temp folder. -> ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes 0700; these folders are meant to be shared
    old = _hidden(path, "old")
    protected = set(protected)
    moved: list[str] = []
    try:
        fill(tmp)
        for f in tmp.iterdir():  # writers that go through a private temp file (safetensors) leave 0600
            if f.is_file() and not f.is_symlink():
                os.chmod(f, 0o644)
        if path.exists():
            if keep_others:
                for f in path.iterdir():
                    if f.name not in protected and not (tmp / f.name).exists():
                        os.replace(f, tmp / f.name)
                        moved.append(f.name)
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        # put the previous folder back as it was: the folder itself if it was moved aside, then its files
        if old.exists() and not path.exists():
            os.replace(old, path)
        for name in moved:
            if (tmp / name).exists() and path.is_dir() and not (path / name).exists():
                os.replace(tmp / name, path / name)
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return path


def recover_dir(path: str | os.PathLike, complete: Callable[[Path], bool], protected: Iterable[str] = ()) -> bool:
    """Repair what a crash inside ``replace_dir(path, ...)`` left: when ``path`` is missing, the newest temp folder
    for which ``complete(folder)`` holds becomes ``path`` (the crash came after it was written), else the previous
    folder returns; files moved aside (not in ``protected``) return to ``path``; hidden leftovers are removed.
    -> whether anything was found to repair."""
    path = Path(path)
    if not path.parent.is_dir():
        return False

    def by_age(pattern: str) -> list[Path]:
        return sorted(path.parent.glob(pattern), key=lambda p: p.stat().st_mtime)

    tmps, olds = by_age(f".{path.name}.tmp-*"), by_age(f".{path.name}.old-*")
    if not tmps and not olds:
        return False
    if not path.exists():
        done = [t for t in tmps if complete(t)]
        if done:
            os.replace(done[-1], path)
            tmps.remove(done[-1])
        elif olds:
            os.replace(olds[-1], path)
            olds.pop()
    protected = set(protected)
    for leftover in [*tmps, *olds]:
        if path.is_dir() and leftover.is_dir():
            for f in leftover.iterdir():
                if f.name not in protected and not (path / f.name).exists():
                    os.replace(f, path / f.name)
        shutil.rmtree(leftover, ignore_errors=True)
    return True


def remove_dir(path: str | os.PathLike) -> None:
    """Delete a folder so that it disappears at once (renamed to a hidden name first): a crash part-way through
    leaves a hidden ``.NAME.del-PID`` leftover, never a half-deleted folder."""
    path = Path(path)
    gone = _hidden(path, "del")
    os.replace(path, gone)
    shutil.rmtree(gone, ignore_errors=True)


def is_writable(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` may be written: the first existing ancestor decides (it may not exist yet); never the
    hub cache's snapshot folders."""
    folder = Path(folder)
    if "snapshots" in folder.parts and any(p.startswith("models--") for p in folder.parts):
        return False
    target = folder
    while not target.exists() and target != target.parent:
        target = target.parent
    return os.access(target, os.W_OK)
