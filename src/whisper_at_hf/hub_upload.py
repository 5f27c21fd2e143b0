"""The one upload of a folder to the Hub, which every push of the package goes through (models, heads, converted
checkpoints, annotated datasets). Authoring only: not part of the code a checkpoint carries.
"""

from __future__ import annotations

import os
from typing import Any


def upload_folder(
    folder: str | os.PathLike,
    repo_id: str | None = None,
    token: str | bool | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    *,
    repo_type: str | None = None,
    allow_patterns: list[str] | None = None,
    ignore_patterns: list[str] | None = None,
    revision: str | None = None,
    run_as_future: bool = False,
) -> Any:
    """THE upload of the package: creates `repo_id` (default: the folder's name; a model repo unless `repo_type`
    says `"dataset"`) if needed and uploads `folder` to it in one commit (only `allow_patterns`, without
    `ignore_patterns`). Returns huggingface_hub's `CommitInfo` (`commit_url`, `repo_url.repo_id`), or a `Future` of
    it with `run_as_future=True`."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    repo_id = repo_id or os.path.basename(os.path.abspath(folder))
    repo_id = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True).repo_id
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=os.fspath(folder),
        repo_type=repo_type,
        commit_message=commit_message or "Upload model",
        allow_patterns=allow_patterns,
        ignore_patterns=ignore_patterns,
        revision=revision,
        run_as_future=run_as_future,
    )


__all__ = ["upload_folder"]
