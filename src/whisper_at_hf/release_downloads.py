"""Downloads of the original release into this package's cache: the head files (from the release URLs, a mirror
or a proxy) and the transformers Whisper each belongs to (from the Hub).

Downloads stream to a temporary file in the cache, are retried (resuming with an HTTP range) when the connection
breaks, and are renamed into place only when complete and size-checked; a head is read with
`torch.load(weights_only=True)` and shape-checked against its Whisper before it is kept.

Environment variables (all optional):

| variable | meaning |
|---|---|
| `WHISPER_AT_HF_CACHE` | cache of this module (default `$HF_HOME/whisper-at-hf`, i.e. `~/.cache/huggingface/whisper-at-hf`) |
| `WHISPER_AT_HF_RELEASE_ENDPOINT` | replaces `https://www.dropbox.com` in the release URLs (a proxy or mirror of that host) |
| `WHISPER_AT_HF_RELEASE_MIRROR` | a folder (local path or http(s) URL) holding the head files under their release names (`large-v2_ori.pth`); when set it is the only source of heads (air-gapped machines) |
| `HF_ENDPOINT`, `HF_HUB_OFFLINE`, `HF_HOME`, `HF_HUB_CACHE`, `HF_TOKEN` | as everywhere in huggingface_hub |
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from huggingface_hub import constants, snapshot_download
from huggingface_hub.utils import are_progress_bars_disabled
from tqdm.auto import tqdm
from transformers.utils import logging

from .file_utils import atomic_write
from .original_format import load_original_head
from .original_variants import OriginalVariant, get_variant

logger = logging.get_logger(f"transformers.{__name__}")  # under transformers: its verbosity rules ours

CACHE_ENV = "WHISPER_AT_HF_CACHE"
RELEASE_ENDPOINT_ENV = "WHISPER_AT_HF_RELEASE_ENDPOINT"
RELEASE_MIRROR_ENV = "WHISPER_AT_HF_RELEASE_MIRROR"

#: Files of a transformers Whisper (or converted checkpoint) worth downloading: safetensors weights, configs,
#: tokenizer and processor files, label names, the card and the remote code. Never `.bin`, `.h5`, `.msgpack`.
CHECKPOINT_FILES = ("*.safetensors", "*.json", "*.txt", "*.md", "*.py", "*.model", "*.tiktoken")

# --------------------------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------------------------
class ReleaseDownloadError(OSError):
    """A release file could not be downloaded from any of its URLs (the message names each URL and the cache)."""


class ReleaseNotCachedError(FileNotFoundError):
    """Offline (`HF_HUB_OFFLINE=1` or `local_files_only=True`) and the variant is not in the cache."""


class HeadMismatchError(ValueError):
    """The downloaded head does not fit the Whisper of its variant (nothing is kept)."""


# --------------------------------------------------------------------------------------------------------------------
# Where things live
# --------------------------------------------------------------------------------------------------------------------
def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """This module's cache: `cache_dir`, else `$WHISPER_AT_HF_CACHE`, else `$HF_HOME/whisper-at-hf`."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    return Path(os.environ.get("HF_HOME") or constants.HF_HOME).expanduser() / "whisper-at-hf"


def hub_cache_dir(cache_dir: str | os.PathLike | None) -> str | None:
    # with an explicit cache_dir everything lives under it; else the standard Hub cache, shared with transformers
    return str(Path(cache_dir).expanduser() / "hub") if cache_dir is not None else None


def is_offline(local_files_only: bool) -> bool:
    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return local_files_only or constants.HF_HUB_OFFLINE or any(
        (flag or "").upper() in ("1", "ON", "YES", "TRUE") for flag in flags
    )


def hub_endpoint(endpoint: str | None) -> str | None:
    # read at call time (huggingface_hub reads HF_ENDPOINT once, at import)
    return endpoint or os.environ.get("HF_ENDPOINT") or None


def head_urls(variant: OriginalVariant) -> list[str]:
    """The URLs a head is fetched from, in order: the mirror folder alone when `WHISPER_AT_HF_RELEASE_MIRROR` is set,
    else the release URLs with their host replaced by `WHISPER_AT_HF_RELEASE_ENDPOINT` when that is set."""
    mirror = os.environ.get(RELEASE_MIRROR_ENV)
    if mirror:
        if "://" in mirror:
            return [mirror.rstrip("/") + "/" + variant.head_file]
        return [str(Path(mirror).expanduser() / variant.head_file)]
    endpoint = os.environ.get(RELEASE_ENDPOINT_ENV)
    if not endpoint:
        return list(variant.urls)
    base = urlsplit(endpoint.rstrip("/"))
    urls = []
    for url in variant.urls:
        parts = urlsplit(url)
        urls.append(urlunsplit((base.scheme, base.netloc, base.path + parts.path, parts.query, "")))
    return urls


def _url_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------------------------
# Downloading one file
# --------------------------------------------------------------------------------------------------------------------
class _IncompleteDownload(OSError):
    pass


def progress_disabled(progress: bool | None) -> bool:
    if progress is not None:
        return not progress
    return are_progress_bars_disabled()


def download_url(
    url: str,
    destination: str | os.PathLike,
    *,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 60.0,
    progress: bool | None = None,
    desc: str | None = None,
) -> int:
    """Streams `url` (redirects followed) to `destination` + `.incomplete` and renames it to `destination` only once
    complete: every byte the server announced (`Content-Length`) arrived. A connection that breaks off is retried up
    to `retries` times (resuming with an HTTP `Range` where the server allows it, else from the start); 5xx and 429
    answers are retried too; other HTTP errors are not. On failure the temporary file is removed.

    Returns the size in bytes. Raises `ReleaseDownloadError` (naming the URL) when it gives up.
    """
    destination = Path(destination)
    partial = destination.with_name(destination.name + ".incomplete")
    disable = progress_disabled(progress)
    last_error: Exception | None = None
    try:
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(min(backoff * 2 ** (attempt - 1), 10.0))
            have = partial.stat().st_size if partial.exists() else 0
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                with requests.get(url, headers=headers, stream=True, timeout=(10.0, timeout)) as response:
                    if response.status_code == 416:  # nothing left to send for that range: start over
                        partial.unlink(missing_ok=True)
                        raise _IncompleteDownload(f"HTTP 416 for the range from byte {have}")
                    if response.status_code >= 400:
                        error = requests.HTTPError(f"HTTP {response.status_code} {response.reason}", response=response)
                        if response.status_code >= 500 or response.status_code in (408, 429):
                            raise error  # transient: retried below
                        raise _Fatal(error)
                    if have and response.status_code != 206:
                        have = 0  # the server ignored the range: the whole file comes again
                    length = response.headers.get("Content-Length")
                    total = have + int(length) if length is not None and length.isdigit() else None
                    with open(partial, "ab" if have else "wb") as file, tqdm(
                        total=total,
                        initial=have,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=desc or destination.name,
                        disable=disable,
                        leave=False,
                    ) as bar:
                        for chunk in response.iter_content(chunk_size=1 << 20):
                            file.write(chunk)
                            bar.update(len(chunk))
                size = partial.stat().st_size
                if total is not None and size != total:
                    raise _IncompleteDownload(f"got {size} of {total} bytes")
                if size == 0:
                    raise _IncompleteDownload("empty answer")
                os.replace(partial, destination)
                return size
            except _Fatal as fatal:
                last_error = fatal.error
                break
            except (requests.RequestException, _IncompleteDownload, OSError) as error:
                last_error = error
                logger.warning(
                    f"download of {url} broke off ({describe(error)}); attempt {attempt + 1} of {retries + 1}"
                )
    finally:
        partial.unlink(missing_ok=True)  # after a success it was renamed; after a failure nothing half is kept
    raise ReleaseDownloadError(f"{url}: {describe(last_error)}")


class _Fatal(Exception):
    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def describe(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty (or gone): leave it


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, payload: Mapping[str, Any]) -> None:
    atomic_write(path, json.dumps(dict(payload), indent=2))


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------------------------------
# The head and the Whisper
# --------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReleaseHead:
    """A head file in the cache (or in a local mirror folder) and where it came from."""

    path: Path
    url: str
    size: int
    sha256: str


def _cached_head(url: str, variant: OriginalVariant, root: Path) -> ReleaseHead | None:
    if "://" not in url:  # a local mirror folder: the file itself
        path = Path(url)
        return ReleaseHead(path, url, path.stat().st_size, _sha256(path)) if path.is_file() else None
    path = root / "heads" / _url_key(url) / variant.head_file
    meta = read_json(path.with_name(path.name + ".json"))
    if meta and path.is_file() and path.stat().st_size == meta.get("size") and meta.get("url") == url:
        return ReleaseHead(path, url, meta["size"], meta["sha256"])
    return None


def check_head(path: str | os.PathLike, variant: OriginalVariant, whisper_config: Mapping[str, Any], whisper: str):
    """Reads a head with `torch.load(weights_only=True)` and checks it against the Whisper's config (`d_model`) and
    the variant's mode (TL-TR / TL-TR-512). Raises [`HeadMismatchError`] naming both shapes."""
    head_state, settings = load_original_head(path)
    d_model, layers = whisper_config.get("d_model"), whisper_config.get("encoder_layers")
    first = head_state["time_block.self_attn.q_proj.weight"]
    head_shape = f"input width {settings['d_model']}"
    if settings["at_low_dim"]:
        head_shape += f" projected to {settings['at_low_dim']}"
    head_shape += f" (time_tr.attn.query.weight {list(first.shape)}, {settings['num_labels']} classes)"
    problems = []
    if settings["d_model"] != d_model:
        problems.append(f"the head has {head_shape} but {whisper} has d_model {d_model} ({layers} encoder layers)")
    if bool(settings["at_low_dim"]) != variant.low_dim:
        mode = "TL-TR-512" if variant.low_dim else "TL-TR"
        found = "TL-TR-512" if settings["at_low_dim"] else "TL-TR"
        problems.append(f"{variant.name} is a {mode} head, the file holds a {found} head")
    if problems:
        raise HeadMismatchError(f"{Path(path).name} does not fit variant {variant.name}: " + "; ".join(problems) + ".")
    return settings


def download_release_head(
    name: str | OriginalVariant,
    low_compute: bool = False,
    *,
    cache_dir: str | os.PathLike | None = None,
    whisper_config: Mapping[str, Any] | None = None,
    whisper: str | None = None,
    local_files_only: bool = False,
    retries: int = 3,
    progress: bool | None = None,
) -> ReleaseHead:
    """The variant's head file from the release (cached under `<cache>/heads/`): its URL, then its fallbacks.

    With `whisper_config` (the Whisper's `config.json` as a dict) a new download is shape-checked BEFORE it is moved
    into the cache, so a wrong file is never kept. Raises [`ReleaseDownloadError`] naming every URL tried and the
    cache folder, [`ReleaseNotCachedError`] offline, [`HeadMismatchError`] for a head that does not fit.
    """
    variant = get_variant(name, low_compute)
    root = cache_root(cache_dir)
    urls = head_urls(variant)
    for url in urls:
        cached = _cached_head(url, variant, root)
        if cached is not None:
            return cached
    if is_offline(local_files_only):
        raise ReleaseNotCachedError(
            f"the head {variant.head_file} is not in the cache {root / 'heads'} and downloads are off "
            "(HF_HUB_OFFLINE=1 or local_files_only=True)."
        )
    failures: list[str] = []
    mismatch = False
    for url in urls:
        if "://" not in url:
            failures.append(f"{url}: no such file")
            continue
        folder = root / "heads" / _url_key(url)
        folder.mkdir(parents=True, exist_ok=True)
        staged = folder / f".staged-{os.getpid()}-{variant.head_file}"
        try:
            size = download_url(url, staged, retries=retries, progress=progress, desc=variant.head_file)
        except ReleaseDownloadError as error:
            failures.append(str(error))
            _remove_if_empty(folder)
            continue
        try:
            # never keep what is not a head of the right shapes (a dead link may answer 200 with an HTML page):
            # such an answer counts as an error of that link, and the next one is tried
            if whisper_config is not None:
                check_head(staged, variant, whisper_config, whisper or variant.base_model)
            else:
                load_original_head(staged)
            path = folder / variant.head_file
            digest = _sha256(staged)
            os.replace(staged, path)
        except ValueError as error:
            failures.append(f"{url}: {error}")
            mismatch = mismatch or isinstance(error, HeadMismatchError)
            continue
        finally:
            staged.unlink(missing_ok=True)
            _remove_if_empty(folder)
        write_json(path.with_name(path.name + ".json"), {"url": url, "size": size, "sha256": digest})
        return ReleaseHead(path, url, size, digest)
    message = (
        f"could not download the Whisper-AT head {variant.head_file} (variant {variant.name}) into {root / 'heads'}; "
        + " | ".join(failures)
    )
    if mismatch:
        raise HeadMismatchError(message + ". Nothing was kept.")
    raise ReleaseDownloadError(
        message + f". Retry later, or put the file in a folder and set {RELEASE_MIRROR_ENV}=FOLDER."
    )


def download_whisper(
    name: str | OriginalVariant,
    low_compute: bool = False,
    *,
    cache_dir: str | os.PathLike | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    local_files_only: bool = False,
) -> Path:
    """The variant's transformers Whisper (`openai/whisper-*`) from the Hub or its cache: safetensors, configs and
    tokenizer files only. Returns the snapshot folder (named by its commit)."""
    variant = get_variant(name, low_compute)
    offline = is_offline(local_files_only)
    try:
        path = Path(
            snapshot_download(
                variant.base_model,
                revision=revision,
                cache_dir=hub_cache_dir(cache_dir),
                endpoint=hub_endpoint(endpoint),
                token=token,
                local_files_only=offline,
                allow_patterns=list(CHECKPOINT_FILES),
            )
        )
    except (OSError, ValueError) as error:  # unreachable Hub, not cached while offline, HTTP errors
        where = "in the cache (offline)" if offline else f"from {hub_endpoint(endpoint) or constants.ENDPOINT}"
        hub_cache = hub_cache_dir(cache_dir) or constants.HF_HUB_CACHE
        raise ReleaseDownloadError(
            f"could not get the Whisper {variant.base_model} {where} into {hub_cache}: {describe(error)}"
        ) from error
    if not list(path.glob("*.safetensors")):
        raise ReleaseDownloadError(f"{variant.base_model} ({path}) holds no safetensors weights.")
    return path


__all__ = [
    "CACHE_ENV",
    "CHECKPOINT_FILES",
    "HeadMismatchError",
    "RELEASE_ENDPOINT_ENV",
    "RELEASE_MIRROR_ENV",
    "ReleaseDownloadError",
    "ReleaseHead",
    "ReleaseNotCachedError",
    "cache_root",
    "check_head",
    "download_release_head",
    "download_url",
    "download_whisper",
    "head_urls",
]
