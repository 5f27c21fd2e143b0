"""What `--model` / `model=` names, checked before anything loads: one function for `whisper-at`,
`whisper-at-annotate`, `whisper-at-convert --whisper` and compat `load_model`, so that every entry point gives the
same clear message for a mistyped variant, a missing folder, a Hub id that does not exist, a plain Whisper folder or
a folder of another model type. Also the fingerprint that identifies a local checkpoint's contents.

Only the config (`config.json`) is read: from the folder, or (for a Hub id) downloaded alone or taken from the cache.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .original_variants import is_variant_name, variant_names
from .release_resolver import resolve_model

WHISPER_AT_MODEL_TYPE = "whisper_at"  # = WhisperATConfig.model_type (not imported: the config module loads torch)
WHISPER_MODEL_TYPE = "whisper"
_ADD_A_HEAD = (
    "add a Whisper-AT head with `WhisperForAudioTaggingAndASR.from_whisper(PATH)` (then train or load one) or "
    "convert an original head onto it with `whisper-at-convert --whisper PATH --at-checkpoint HEAD.pth --output DIR`"
)


class ModelSourceError(ValueError):
    """`--model` / `model=` names nothing usable; the message says what and how to fix it."""


class ModelSourceNotFoundError(ModelSourceError, FileNotFoundError):
    """`--model` names a folder or Hub repository that does not exist."""


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith((".", "~", os.sep, "/"))
        or (os.altsep is not None and os.altsep in name)
        or name.count("/") > 1
        or name.endswith("/")
        or "\\" in name
    )


def _variant_hint(name: str) -> str:
    close = difflib.get_close_matches(name, variant_names(), n=1, cutoff=0.6)
    closest = f"Did you mean {close[0]!r}? " if close else ""
    return f"{closest}The variants are {', '.join(variant_names())} (`large` = large-v2)."


def _config_problem(config: dict[str, Any], where: str, expect: str) -> str | None:
    model_type = config.get("model_type")
    if model_type == expect or (expect == WHISPER_MODEL_TYPE and model_type == WHISPER_AT_MODEL_TYPE):
        return None
    if expect == WHISPER_AT_MODEL_TYPE and model_type == WHISPER_MODEL_TYPE:
        return f"{where} is a plain Whisper checkpoint without an audio-tagging head: {_ADD_A_HEAD}."
    return f"{where} is a {model_type or 'untyped'!s} checkpoint, not a {expect} one (config.json model_type)."


def _read_local_config(folder: Path, where: str) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise ModelSourceError(f"{where} has no config.json: it is not a transformers checkpoint folder.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelSourceError(f"{where}: config.json is unreadable ({error}).") from error
    if not isinstance(config, dict):
        raise ModelSourceError(f"{where}: config.json is not a JSON object.")
    return config


def _read_hub_config(repo_id: str, revision: str | None, cache_dir: str | None) -> dict[str, Any]:
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    offline = huggingface_hub.constants.HF_HUB_OFFLINE
    try:
        if offline:
            path = huggingface_hub.try_to_load_from_cache(repo_id, "config.json", cache_dir=cache_dir,
                                                          revision=revision)
            if not isinstance(path, str):
                raise ModelSourceNotFoundError(
                    f"{repo_id!r} is neither a local folder nor a Hub model in the cache, and HF_HUB_OFFLINE is set "
                    "(so the Hub was not asked)."
                )
        else:
            path = huggingface_hub.hf_hub_download(repo_id, "config.json", revision=revision, cache_dir=cache_dir)
    except RevisionNotFoundError as error:
        raise ModelSourceNotFoundError(f"the Hub model {repo_id!r} has no revision {revision!r}.") from error
    except RepositoryNotFoundError as error:
        raise ModelSourceNotFoundError(
            f"{repo_id!r} is neither a local folder nor a model on the Hub (a private one needs `hf auth login`)."
        ) from error
    except EntryNotFoundError as error:
        raise ModelSourceError(f"the Hub repository {repo_id!r} has no config.json: not a transformers model.") from error
    except (OSError, ValueError) as error:  # no connection, an invalid repo id
        if isinstance(error, ModelSourceError):
            raise
        raise ModelSourceNotFoundError(
            f"{repo_id!r} is not a local folder, and the Hub could not be asked for it ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})."
        ) from error
    return json.loads(Path(path).read_text(encoding="utf-8"))


def check_model_source(
    name: str | os.PathLike | None,
    *,
    revision: str | None = None,
    expect: str = WHISPER_AT_MODEL_TYPE,
    cache_dir: str | None = None,
    option: str = "--model",
) -> str | None:
    """Checks what `name` names before any weights load; returns `"variant"`, `"folder"` or `"hub"` (`None` for
    `None`, the default variant).

    A variant name is left to the release resolver. A folder must hold a `config.json` of `expect`'s model type
    (`"whisper_at"`; `"whisper"` for `whisper-at-convert --whisper`, which also takes a Whisper-AT folder). Anything
    else must be a Hub id (`org/name`) whose config exists (from the cache when `HF_HUB_OFFLINE` is set).

    Raises:
        ModelSourceNotFoundError: (a `FileNotFoundError`) a missing folder or Hub model; a name like a mistyped
            variant lists the variants and the closest one.
        ModelSourceError: (a `ValueError`) `""`, a folder without a config, a plain Whisper (says how to add a
            head), another model type.
    """
    if name is None:
        return None
    text = os.fspath(name)
    if not text.strip():
        raise ModelSourceError(f"{option} is empty: give a variant name, a checkpoint folder or a Hub id. "
                               + _variant_hint(""))
    if expect == WHISPER_AT_MODEL_TYPE and is_variant_name(text):
        return "variant"
    folder = Path(text).expanduser()
    if folder.is_dir():
        problem = _config_problem(_read_local_config(folder, f"{text}"), text, expect)
        if problem:
            raise ModelSourceError(problem)
        return "folder"
    if folder.exists():
        raise ModelSourceError(f"{option} {text!r} is a file, not a checkpoint folder, a variant or a Hub id.")
    if _looks_like_path(text):
        raise ModelSourceNotFoundError(f"no such local directory: {text!r} ({option}).")
    if "/" not in text:  # Whisper-AT checkpoints on the Hub are `org/name`
        what = "a released variant, a folder or a Hub id (org/name)" if expect == WHISPER_AT_MODEL_TYPE else (
            "a folder or a Hub id (org/name)")
        raise ModelSourceNotFoundError(f"{option} {text!r} is not {what}. " + (
            _variant_hint(text) if expect == WHISPER_AT_MODEL_TYPE else ""))
    problem = _config_problem(_read_hub_config(text, revision, cache_dir), f"the Hub model {text!r}", expect)
    if problem:
        raise ModelSourceError(problem)
    return "hub"


def resolve_checked_model(
    name: str | os.PathLike | None, low_compute: bool = False, *, revision: str | None = None, **kwargs: Any
) -> str:
    """[`check_model_source`], then the release resolver's `resolve_model` (a variant is downloaded / converted
    once and cached): what `whisper-at`, `whisper-at --live` and `whisper-at-annotate` load. Returns a local folder
    or a Hub id."""
    check_model_source(name, revision=revision)
    return resolve_model(name, low_compute, **kwargs)


# --------------------------------------------------------------------------------------------------------------------
# Fingerprint of a local checkpoint
# --------------------------------------------------------------------------------------------------------------------
_FULL_HASH_LIMIT = 64 * 2**20  # files up to this size are hashed whole
_SAMPLE_BLOCKS, _BLOCK = 16, 2**20  # larger ones: their safetensors header and 16 evenly spaced 1 MiB blocks


def _file_digest(path: Path) -> str:
    size = path.stat().st_size
    digest = hashlib.sha256(f"{path.name}\0{size}\0".encode())
    with open(path, "rb") as handle:
        if size <= _FULL_HASH_LIMIT:
            for block in iter(lambda: handle.read(_BLOCK), b""):
                digest.update(block)
            return digest.hexdigest()
        if path.suffix == ".safetensors":  # 8-byte length, then the JSON header: every tensor's name, dtype, shape
            header_length = int.from_bytes(handle.read(8), "little")
            if header_length < size:
                digest.update(handle.read(header_length))
        for position in range(_SAMPLE_BLOCKS):
            handle.seek((size - _BLOCK) * position // (_SAMPLE_BLOCKS - 1))
            digest.update(handle.read(_BLOCK))
    return digest.hexdigest()


def checkpoint_fingerprint(folder: str | os.PathLike) -> str | None:
    """A sha256 identifying a local checkpoint folder's contents (`None` for anything that is not a folder).

    Over the top-level weight and JSON files (`*.safetensors`, `*.bin`, `*.pt`, `*.json`: config, generation config,
    processor, label names), each by name and size and, up to 64 MiB, its whole contents; a larger file by its
    safetensors header (every tensor's name, dtype, shape and offsets) and 16 evenly spaced 1 MiB blocks, so that a
    GB checkpoint costs ~20 MiB of reading. Retrained or replaced weights change it; a copy to another place does not.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return None
    files = sorted(path for path in folder.iterdir() if path.is_file() and path.suffix in (
        ".safetensors", ".bin", ".pt", ".json"))
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.name}\0{_file_digest(path)}\n".encode())
    return "sha256:" + digest.hexdigest()


__all__ = [
    "ModelSourceError",
    "ModelSourceNotFoundError",
    "check_model_source",
    "checkpoint_fingerprint",
    "resolve_checked_model",
]
