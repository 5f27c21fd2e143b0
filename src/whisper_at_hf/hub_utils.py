"""Where checkpoint files come from: local folders or Hub repos.

The one rule for "is this a Hub repo id or a local path" and one way to find a file in either (the Hub cache
included), what loading needs; uploads are `hub_upload.py`'s. `huggingface_hub` honours `HF_ENDPOINT`, so everything
here works against any Hub-compatible server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# from_pretrained kwargs about where files come from; valid for every repo a checkpoint names
HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token")


def is_hub_id(name_or_path: str | os.PathLike | None) -> bool:
    """Whether `name_or_path` names a Hub repo (`"name"` or `"org/name"`) rather than a local path.

    An existing path is local; so is anything absolute, starting with `.` or `~`, with more than one `/`, or with an
    empty part or a part starting with `.` or `-` (which the Hub does not allow).
    """
    if not name_or_path:
        return False
    name = os.fspath(name_or_path)
    if Path(name).exists() or os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name:
        return False
    return name.count("/") <= 1 and all(part and not part.startswith((".", "-")) for part in name.split("/"))


def hub_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The location kwargs (`cache_dir`, `token`, ...) among `from_pretrained` kwargs."""
    return {key: kwargs[key] for key in HUB_KWARGS if key in kwargs}


def find_file(
    name_or_path: str | os.PathLike,
    filename: str,
    revision: str | None = None,
    subfolder: str | None = None,
    **location: Any,
) -> str | None:
    """Path of `filename` in a local checkpoint folder, or in a Hub repo (downloaded or from the cache); `None` when
    the folder or repo does not have it (or, offline, the cache lacks it).

    Anything else is raised, not taken for "not there": an unreachable Hub (while online), a gated repo without
    access, an unknown revision.
    """
    local = Path(os.fspath(name_or_path), subfolder or "")
    if local.is_dir():
        return str(local / filename) if (local / filename).is_file() else None
    if not is_hub_id(name_or_path):
        return None
    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    try:
        return hf_hub_download(
            os.fspath(name_or_path), filename, subfolder=subfolder or None, revision=revision, **location
        )
    except LocalEntryNotFoundError:  # not in the cache, and the Hub was not asked (offline) or could not be reached
        if location.get("local_files_only") or constants.HF_HUB_OFFLINE:
            return None
        raise
    except GatedRepoError:
        raise
    except (EntryNotFoundError, RepositoryNotFoundError):
        return None


__all__ = ["HUB_KWARGS", "find_file", "hub_kwargs", "is_hub_id"]
