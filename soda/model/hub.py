"""Checkpoints on the Hugging Face hub: fetch only the files a SODA checkpoint needs, optionally measured first.

``fetch(repo_id)`` downloads the repository's ``*.json``, ``*.safetensors`` and ``*.md`` (nothing that could be
unpickled). With ``max_bytes`` the repository's file metadata is read first: a download over the limit, or one whose
size the hub does not report, is refused before any file is fetched, and the download is pinned to the commit that
was measured (a push between the two calls cannot slip a larger file in). In offline mode (``HF_HUB_OFFLINE=1``)
nothing is downloaded: the snapshot comes from the local cache or not at all, so there is nothing to measure.
"""

from __future__ import annotations

from pathlib import Path

from ..config import ConfigError

HUB_PATTERNS = ["*.json", "*.safetensors", "*.md"]
MB = 1 << 20


def download_size(repo_id: str) -> tuple[str | None, int, list[str]]:
    """-> (commit sha, total bytes of the files ``fetch`` would download, names of matching files of unknown size)."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import filter_repo_objects

    info = HfApi().model_info(repo_id, files_metadata=True)
    files = list(filter_repo_objects(info.siblings or [], allow_patterns=HUB_PATTERNS, key=lambda s: s.rfilename))
    unknown = [s.rfilename for s in files if s.size is None]
    return info.sha, sum(s.size or 0 for s in files), unknown


def fetch(repo_id: str, max_bytes: int | None = None) -> Path:
    """Hub id -> local snapshot folder with the checkpoint's files; over ``max_bytes``: ConfigError, nothing fetched."""
    from huggingface_hub import constants, snapshot_download

    revision = None
    if max_bytes is not None and not constants.HF_HUB_OFFLINE:
        revision, total, unknown = download_size(repo_id)
        if unknown:
            raise ConfigError(
                f"hub checkpoint '{repo_id}' refused: the hub does not report the size of {unknown[0]}, so the "
                f"download limit of {max_bytes / MB:.0f} MB cannot be checked; nothing was downloaded"
            )
        if total > max_bytes:
            raise ConfigError(
                f"hub checkpoint '{repo_id}' refused: {total / MB:.1f} MB to download is over this server's limit "
                f"of {max_bytes / MB:.0f} MB; nothing was downloaded"
            )
    return Path(snapshot_download(repo_id, revision=revision, allow_patterns=HUB_PATTERNS))
