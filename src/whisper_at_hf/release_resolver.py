"""The resolver: a released variant name -> a ready-to-load checkpoint folder.

    from whisper_at_hf import released_checkpoint
    path = released_checkpoint("large-v2")                     # or ("large-v2", low_compute=True) / "large-v2_low"
    tagger = pipeline("whisper-at", model=path)

[`released_checkpoint`] resolves a name in this order:
1. the checkpoint this cache already holds for the variant (no network at all: a second call, or any call with
   `HF_HUB_OFFLINE=1` after a first one);
2. the converted checkpoint published on the Hub (`whisper-at-hf/whisper-at-<variant>`), downloaded with
   huggingface_hub (safetensors only);
3. else the head from the original release URL (then its fallbacks) and the Whisper from the Hub
   ([`release_downloads`]), converted by `convert_whisper_at_checkpoint` into a head-only checkpoint that points at
   the cached Whisper snapshot.

One file lock per variant makes concurrent processes download and convert once. [`resolve_model`] is what every
entry point does with `--model` / `model=`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from huggingface_hub import snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError
from tqdm.auto import tqdm
from transformers.utils import logging

from .conversion import convert_whisper_at_checkpoint
from .file_utils import staging_dir
from .original_variants import (
    OriginalVariant,
    default_variant,
    get_variant,
    is_variant_name,
    variant_names,
)
from .release_downloads import (
    CHECKPOINT_FILES,
    ReleaseNotCachedError,
    cache_root,
    check_head,
    describe,
    download_release_head,
    download_whisper,
    hub_cache_dir,
    hub_endpoint,
    is_offline,
    progress_disabled,
    read_json,
    write_json,
)

logger = logging.get_logger(f"transformers.{__name__}")  # under transformers: its verbosity rules ours

_RECORD = "resolved.json"


def _resolved(root: Path, variant: OriginalVariant, cache_dir: str | os.PathLike | None) -> Path | None:
    """The checkpoint recorded by the last successful resolution, if all of it is still there. No network.

    A cache copied to another path (another machine's `HF_HOME`) still resolves: the checkpoint is found by its folder
    name under this cache, the Whisper snapshot by repo and commit in the Hub cache, and the head-only checkpoint's
    `base_model_name_or_path` is pointed at it again.
    """
    record = read_json(root / "checkpoints" / variant.name / _RECORD)
    if not record:
        return None
    path = Path(record.get("path", ""))
    needed = [path / "config.json", *(Path(p) for p in record.get("requires", []))]
    if all(p.exists() for p in needed):
        return path
    return _relocated(root, variant, cache_dir, record)


def _whisper_files(whisper_dir: Path) -> list[str]:
    """What a head-only checkpoint on this Whisper snapshot needs to exist."""
    return [str(p) for p in sorted(whisper_dir.glob("*.safetensors"))] + [str(whisper_dir / "config.json")]


def _relocated(root: Path, variant: OriginalVariant, cache_dir, record: Mapping[str, Any]) -> Path | None:
    def cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
        try:
            return Path(snapshot_download(repo_id, revision=revision, cache_dir=hub_cache_dir(cache_dir),
                                          local_files_only=True, allow_patterns=list(CHECKPOINT_FILES)))  # fmt: skip
        except (OSError, ValueError):
            return None

    if record.get("source") == "hub":
        snapshot = cached_snapshot(record.get("repo_id", ""), None)
        return snapshot if snapshot is not None and (snapshot / "config.json").is_file() else None
    folder = root / "checkpoints" / variant.name / Path(record.get("path", "")).name
    whisper_dir = cached_snapshot(record.get("whisper", ""), record.get("whisper_revision"))
    if not (folder / "config.json").is_file() or whisper_dir is None or not list(whisper_dir.glob("*.safetensors")):
        return None
    config = json.loads((folder / "config.json").read_text())
    config["base_model_name_or_path"] = str(whisper_dir)
    write_json(folder / "config.json", config)
    write_json(
        root / "checkpoints" / variant.name / _RECORD,
        {
            **record,
            "path": str(folder),
            "requires": _whisper_files(whisper_dir),
        },
    )
    logger.info(f"Whisper-AT {variant.name}: the cache moved; {folder} now points at {whisper_dir}")
    return folder


def released_checkpoint(
    name: str | OriginalVariant,
    low_compute: bool = False,
    *,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    endpoint: str | None = None,
    token: str | bool | None = None,
    namespace: str | None = None,
    retries: int = 3,
    progress: bool | None = None,
) -> str:
    """A local folder holding the released Whisper-AT variant `name`, ready for `from_pretrained` / `pipeline`.

    Args:
        name: `"tiny"` ... `"large-v2"` (`"large"` = large-v2), `"<name>_low"` for a TL-TR-512 head.
        low_compute: the TL-TR-512 head of `name` (small, small.en, medium, medium.en, large-v1, large-v2).
        cache_dir: cache folder for everything (heads, Whisper snapshots under `hub/`, checkpoints); default
            [`cache_root`] for this module's files and the standard Hub cache for the Whisper.
        force_download: resolve again (Hub, release) even when the cache holds the variant.
        local_files_only: never touch the network (also with `HF_HUB_OFFLINE=1`).
        endpoint: the Hub (default `HF_ENDPOINT` or huggingface.co).
        namespace: Hub organisation of published converted checkpoints (default `whisper-at-hf`).
        retries: attempts after a broken-off release download.
        progress: show progress bars (default: unless huggingface_hub's are disabled).

    Returns:
        The checkpoint folder: the Hub snapshot of the published checkpoint, or a head-only checkpoint converted into
        `<cache>/checkpoints/<variant>/<whisper commit>-<head sha256>/` whose base Whisper is the cached snapshot.

    Raises:
        ValueError: unknown variant (lists the 16 names) or no low-compute head for it.
        ReleaseNotCachedError: offline and not cached. ReleaseDownloadError: the head could not be downloaded.
        HeadMismatchError: the head file does not fit the Whisper (nothing is cached).
    """
    variant = get_variant(name, low_compute)
    root = cache_root(cache_dir)
    if not force_download:
        found = _resolved(root, variant, cache_dir)
        if found is not None:
            return str(found)
    offline = is_offline(local_files_only)
    if offline:
        raise ReleaseNotCachedError(
            f"Whisper-AT variant {variant.name!r} is not in the cache {root} and downloads are off (HF_HUB_OFFLINE=1 "
            f"or local_files_only=True). Resolve it once with network access, e.g. `whisper-at-convert --variant "
            f"{variant.name} --download-only`, or copy a converted checkpoint and pass its folder."
        )
    lock_path = root / "locks" / f"{variant.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=1)
    except Timeout:
        logger.warning(f"waiting for another process resolving Whisper-AT {variant.name} ({lock_path})")
        lock.acquire()
    try:
        if not force_download:
            found = _resolved(root, variant, cache_dir)  # another process may have finished meanwhile
            if found is not None:
                return str(found)
        published = _published_checkpoint(variant, cache_dir, endpoint, token, namespace)
        if published is not None:
            write_json(
                root / "checkpoints" / variant.name / _RECORD,
                {"path": str(published), "source": "hub", "repo_id": variant.hub_id(namespace)},
            )
            return str(published)
        return str(_convert_release(variant, root, cache_dir, endpoint, token, retries, progress))
    finally:
        lock.release()


def _published_checkpoint(variant, cache_dir, endpoint, token, namespace) -> Path | None:
    """The converted checkpoint from the Hub, or `None` when it is not published there."""

    try:
        path = snapshot_download(
            variant.hub_id(namespace),
            cache_dir=hub_cache_dir(cache_dir),
            endpoint=hub_endpoint(endpoint),
            token=token,
            allow_patterns=list(CHECKPOINT_FILES),
        )
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return None
    except (OSError, ValueError) as error:  # the Hub did not answer: the release path may still work
        logger.warning(
            f"could not check the Hub for {variant.hub_id(namespace)} ({describe(error)}); trying the release"
        )
        return None
    path = Path(path)
    return path if (path / "config.json").is_file() else None


def _convert_release(variant, root: Path, cache_dir, endpoint, token, retries, progress) -> Path:

    whisper_dir = download_whisper(variant, cache_dir=cache_dir, endpoint=endpoint, token=token)
    whisper_config = json.loads((whisper_dir / "config.json").read_text())
    head = download_release_head(
        variant, cache_dir=cache_dir, whisper_config=whisper_config, whisper=variant.base_model, retries=retries,
        progress=progress,
    )  # fmt: skip
    commit = whisper_dir.name
    folder = root / "checkpoints" / variant.name
    target = folder / f"{commit[:12]}-{head.sha256[:12]}"
    folder.mkdir(parents=True, exist_ok=True)
    steps = tqdm(total=3, desc=f"converting {variant.name}", disable=progress_disabled(progress), leave=False)
    with steps:
        check_head(head.path, variant, whisper_config, variant.base_model)  # also for a head cached earlier
        steps.update(1)
        if not (target / "config.json").is_file():
            staging = staging_dir(folder)  # not mkdtemp: its 0700 would survive as the cached folder's mode
            try:
                convert_whisper_at_checkpoint(
                    str(whisper_dir),
                    head.path,
                    staging,
                    head_only=True,
                    base_model_name_or_path=str(whisper_dir),
                    base_model_revision=commit,
                    variant=variant.name,
                )
                steps.update(1)
                shutil.rmtree(target, ignore_errors=True)  # an incomplete folder of a crashed run
                os.replace(staging, target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        else:
            steps.update(1)
        write_json(
            folder / _RECORD,
            {
                "path": str(target),
                "source": "release",
                "head_url": head.url,
                "head_sha256": head.sha256,
                "whisper": variant.base_model,
                "whisper_revision": commit,
                # the base Whisper of this head-only checkpoint: if the Hub cache lost it, resolve again
                "requires": _whisper_files(whisper_dir),
            },
        )
        steps.update(1)
    return target


def resolve_model(
    name_or_path: str | os.PathLike | None, low_compute: bool = False, **kwargs: Any
) -> str:
    """What every entry point does with `--model` / `model=`: an existing local folder is itself, a variant name is
    [`released_checkpoint`] (`None`: the default variant), anything else (a Hub id) is returned as given.

    Raises:
        ValueError: `low_compute=True` for something that is not a variant name.
    """
    if name_or_path is None:
        name_or_path = default_variant()
    name = os.fspath(name_or_path)
    if Path(name).expanduser().is_dir():
        if low_compute:
            raise ValueError(
                f"low-compute applies to variant names; {name} is a checkpoint folder (its config decides)."
            )
        return name
    if is_variant_name(name):
        return released_checkpoint(name, low_compute, **kwargs)
    if low_compute:
        raise ValueError(f"low-compute applies to variant names ({', '.join(variant_names())}), not to {name!r}.")
    return name


__all__ = ["released_checkpoint", "resolve_model"]
