"""The original Whisper-AT release: its 16 heads, where they are published, and a resolver that turns a variant name
into a ready-to-load checkpoint.

    from whisper_at_hf import released_checkpoint
    path = released_checkpoint("large-v2")                     # or ("large-v2", low_compute=True) / "large-v2_low"
    tagger = pipeline("whisper-at", model=path)

[`ORIGINAL_VARIANTS`] is THE table of the release (names, mAP, head sizes, download URLs, the transformers Whisper
each head belongs to); model cards, `compat`, the CLI and the converter all read it.

[`released_checkpoint`] resolves a name in this order:
1. the checkpoint this cache already holds for the variant (no network at all: a second call, or any call with
   `HF_HUB_OFFLINE=1` after a first one);
2. the converted checkpoint published on the Hub (`whisper-at-hf/whisper-at-<variant>`), downloaded with
   huggingface_hub (safetensors only);
3. else the head from the original release URL (then its fallbacks) and the Whisper from the Hub, converted by
   `convert_whisper_at_checkpoint` into a head-only checkpoint that points at the cached Whisper snapshot.

Downloads stream to a temporary file in the cache, are retried (resuming with an HTTP range) when the connection
breaks, and are renamed into place only when complete and size-checked; a head is read with
`torch.load(weights_only=True)` and shape-checked against its Whisper before it is kept. One file lock per variant
makes concurrent processes download and convert once.

Environment variables (all optional):

| variable | meaning |
|---|---|
| `WHISPER_AT_HF_CACHE` | cache of this module (default `$HF_HOME/whisper-at-hf`, i.e. `~/.cache/huggingface/whisper-at-hf`) |
| `WHISPER_AT_HF_RELEASE_ENDPOINT` | replaces `https://www.dropbox.com` in the release URLs (a proxy or mirror of that host) |
| `WHISPER_AT_HF_RELEASE_MIRROR` | a folder (local path or http(s) URL) holding the head files under their release names (`large-v2_ori.pth`); when set it is the only source of heads (air-gapped machines) |
| `WHISPER_AT_HF_HUB_NAMESPACE` | Hub organisation of the published converted checkpoints (default `whisper-at-hf`) |
| `WHISPER_AT_HF_DEFAULT_VARIANT` | the variant the CLI and `pipeline("whisper-at")` use without a model (default `small`) |
| `HF_ENDPOINT`, `HF_HUB_OFFLINE`, `HF_HOME`, `HF_HUB_CACHE`, `HF_TOKEN` | as everywhere in huggingface_hub |
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from transformers.utils import logging

from .file_utils import atomic_write

logger = logging.get_logger(__name__)

#: Hub organisation of the converted original checkpoints (`whisper-at-convert --variant all --push-to-hub ORG`).
HUB_NAMESPACE = "whisper-at-hf"
#: The variant used when none is named: small (Whisper 244M, tags at 39.8 mAP), see the README.
DEFAULT_VARIANT = "small"
#: Host of the original release's URLs (what `WHISPER_AT_HF_RELEASE_ENDPOINT` replaces).
RELEASE_HOST = "https://www.dropbox.com"

CACHE_ENV = "WHISPER_AT_HF_CACHE"
RELEASE_ENDPOINT_ENV = "WHISPER_AT_HF_RELEASE_ENDPOINT"
RELEASE_MIRROR_ENV = "WHISPER_AT_HF_RELEASE_MIRROR"
HUB_NAMESPACE_ENV = "WHISPER_AT_HF_HUB_NAMESPACE"
DEFAULT_VARIANT_ENV = "WHISPER_AT_HF_DEFAULT_VARIANT"

#: Files of a transformers Whisper (or converted checkpoint) worth downloading: safetensors weights, configs,
#: tokenizer and processor files, label names, the card and the remote code. Never `.bin`, `.h5`, `.msgpack`.
CHECKPOINT_FILES = ("*.safetensors", "*.json", "*.txt", "*.md", "*.py", "*.model", "*.tiktoken")


@dataclass(frozen=True)
class OriginalVariant:
    """One released Whisper-AT head.

    Args:
        whisper: the OpenAI Whisper it was trained on (`"large-v2"`, `"small.en"`, ...).
        low_dim: `True` for the TL-TR-512 head (`*_low.pth`), `False` for TL-TR (`*_ori.pth`).
        audioset_map: AudioSet evaluation-set mAP (%) reported by the original release.
        head_params: head parameter count as reported (`"40.0M"`).
        url: where the original package (`whisper_at` 0.5) downloads the head.
        fallback_urls: older links of the original repository's `pretrained_models/README.md` that differ from `url`,
            tried when `url` answers with an error.
    """

    whisper: str
    low_dim: bool
    audioset_map: float
    head_params: str
    url: str = ""
    fallback_urls: tuple[str, ...] = field(default=())

    @property
    def name(self) -> str:
        return f"{self.whisper}_low" if self.low_dim else self.whisper

    @property
    def head_file(self) -> str:
        return f"{self.whisper}_{'low' if self.low_dim else 'ori'}.pth"

    @property
    def repo_name(self) -> str:
        return f"whisper-at-{self.whisper}{'-low' if self.low_dim else ''}"

    @property
    def size(self) -> str:
        return self.whisper.split(".")[0].split("-")[0]

    @property
    def english_only(self) -> bool:
        return self.whisper.endswith(".en")

    @property
    def base_model(self) -> str:
        # transformers' name of large-v1 is "openai/whisper-large"
        return "openai/whisper-large" if self.whisper == "large-v1" else f"openai/whisper-{self.whisper}"

    @property
    def at_low_dim(self) -> int | None:
        return 512 if self.low_dim else None

    @property
    def urls(self) -> tuple[str, ...]:
        """The release URLs in the order they are tried."""
        return tuple(dict.fromkeys((self.url, *self.fallback_urls)))

    def hub_id(self, namespace: str | None = None) -> str:
        """Where the converted checkpoint is published: `whisper-at-hf/whisper-at-large-v2-low`."""
        return f"{namespace or hub_namespace()}/{self.repo_name}"


# Head file links. First: the original package's (`whisper_at` 0.5, `_MODELS_AT`). Second, only where it differs: the
# original repository's `pretrained_models/README.md`.
_DROPBOX = RELEASE_HOST + "/s/"
_RELEASE_URLS: dict[str, tuple[str, ...]] = {
    "tiny.en": ("atq9so6w0qug5ai/tiny.en_ori.pth",),
    "tiny": ("cib4q4iz6g758l0/tiny_ori.pth", "06f2h29aki39q9r/tiny_ori.pth"),
    "base.en": ("qtzgsbuquoz0afn/base.en_ori.pth",),
    "base": ("2odwh42u6e9ger7/base_ori.pth", "4vn2oatda321y7h/base_ori.pth"),
    "small.en": ("cyx50ycl1ul7lji/small.en_ori.pth",),
    "small.en_low": ("507o66zgl8v6ddd/small.en_low.pth",),
    "small": ("jftj9s0kr4ycvr1/small_ori.pth", "5zqzs3e47zwhjd3/small_ori.pth"),
    "small_low": ("a1x0416v58f7wrf/small_low.pth", "3lxlmh437tneifl/small_low.pth"),
    "medium.en": ("bbvylvmgns8ja4p/medium.en_ori.pth",),
    "medium.en_low": ("2q5wprr8f9gti5t/medium.en_low.pth",),
    "medium": ("65aabayr7o819az/medium_ori.pth", "93zfj4afmv0qfyl/medium_ori.pth"),
    "medium_low": ("0mnfmcasram4n6o/medium_low.pth", "g66h1vtn1u426dj/medium_low.pth"),
    "large-v1": ("b8x2en1fdzc8nhk/large-v1_ori.pth",),
    "large-v1_low": ("5o79h70wyla8jlk/large-v1_low.pth",),
    "large-v2": ("3zxpyvdrxy22eq7/large-v2_ori.pth", "94x7wqw4hscpls0/large-v2_ori.pth"),
    "large-v2_low": ("jw2rh4uylhqgn85/large-v2_low.pth", "wk5dyxustpji06c/large-v2_low.pth"),
}


def _variants(rows: Sequence[tuple[str, float, str, float | None, str | None]]) -> tuple[OriginalVariant, ...]:
    variants = []
    for whisper, full_map, full_params, low_map, low_params in rows:
        for low, audioset_map, params in ((False, full_map, full_params), (True, low_map, low_params)):
            if audioset_map is None:
                continue
            name = f"{whisper}_low" if low else whisper
            urls = tuple(f"{_DROPBOX}{path}?dl=1" for path in _RELEASE_URLS[name])
            variants.append(OriginalVariant(whisper, low, audioset_map, params, urls[0], urls[1:]))
    return tuple(variants)


# THE table: Whisper, TL-TR mAP, TL-TR params, TL-TR-512 mAP, TL-TR-512 params (original release, AudioSet eval).
# TL-TR-512 does not exist for tiny/base, whose width is not above 512.
ORIGINAL_VARIANTS: tuple[OriginalVariant, ...] = _variants(
    [
        ("tiny", 36.5, "3.8M", None, None),
        ("tiny.en", 35.8, "3.8M", None, None),
        ("base", 37.6, "6.6M", None, None),
        ("base.en", 37.5, "6.6M", None, None),
        ("small", 39.8, "14.6M", 39.8, "6.9M"),
        ("small.en", 40.1, "14.6M", 39.9, "6.9M"),
        ("medium", 40.8, "25.8M", 41.2, "7.1M"),
        ("medium.en", 41.4, "25.8M", 41.1, "7.1M"),
        ("large-v1", 42.1, "40.0M", 41.6, "7.2M"),
        ("large-v2", 41.7, "40.0M", 40.3, "7.2M"),
    ]
)
ORIGINAL_VARIANTS_BY_NAME: dict[str, OriginalVariant] = {variant.name: variant for variant in ORIGINAL_VARIANTS}
#: The original's aliases (`large` is large-v2).
ALIASES: dict[str, str] = {"large": "large-v2", "large_low": "large-v2_low"}


def find_original_variant(name: str | None) -> OriginalVariant | None:
    """The released variant named by a head file or variant name (`"large-v2_ori.pth"`, `"small_low"`,
    `"large-v2"`; the original's alias `large` is large-v2), or `None` when it is not one of the 16."""
    if not name:
        return None
    stem = Path(name).name
    for suffix in (".pth", ".pt"):
        stem = stem.removesuffix(suffix)
    stem = stem.removesuffix("_ori")
    return ORIGINAL_VARIANTS_BY_NAME.get(ALIASES.get(stem, stem))


def variant_names() -> list[str]:
    """The 16 variant names, in table order."""
    return [variant.name for variant in ORIGINAL_VARIANTS]


def get_variant(name: str | OriginalVariant, low_compute: bool = False) -> OriginalVariant:
    """The variant `name` (`"large-v2"`, `"large"`, `"small_low"`), its TL-TR-512 head with `low_compute=True`.

    Raises:
        ValueError: an unknown name (the message lists the 16), or `low_compute` for tiny / base (no such head).
    """
    if isinstance(name, OriginalVariant):
        variant = name
    else:
        variant = ORIGINAL_VARIANTS_BY_NAME.get(ALIASES.get(name, name))
        if variant is None:
            raise ValueError(
                f"{name!r} is not a released Whisper-AT variant; the 16 are: {', '.join(variant_names())} "
                "(`large` = large-v2). A local checkpoint folder or a Hub id `org/name` is taken as such."
            )
    if low_compute and not variant.low_dim:
        low = ORIGINAL_VARIANTS_BY_NAME.get(f"{variant.whisper}_low")
        if low is None:
            with_low = [v.whisper for v in ORIGINAL_VARIANTS if v.low_dim]
            raise ValueError(
                f"there is no low-compute (TL-TR-512) head for {variant.whisper!r}; it exists only for "
                f"{', '.join(with_low)}."
            )
        variant = low
    return variant


def is_variant_name(name: Any) -> bool:
    return isinstance(name, str) and ALIASES.get(name, name) in ORIGINAL_VARIANTS_BY_NAME


def hub_namespace() -> str:
    return os.environ.get(HUB_NAMESPACE_ENV) or HUB_NAMESPACE


def default_variant() -> str:
    """`WHISPER_AT_HF_DEFAULT_VARIANT` or [`DEFAULT_VARIANT`]."""
    return os.environ.get(DEFAULT_VARIANT_ENV) or DEFAULT_VARIANT


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
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HOME") or constants.HF_HOME).expanduser() / "whisper-at-hf"


def _hub_cache(cache_dir: str | os.PathLike | None) -> str | None:
    # with an explicit cache_dir everything lives under it; else the standard Hub cache, shared with transformers
    return str(Path(cache_dir).expanduser() / "hub") if cache_dir is not None else None


def _is_offline(local_files_only: bool) -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE"), os.environ.get("TRANSFORMERS_OFFLINE"))
    return local_files_only or constants.HF_HUB_OFFLINE or any(
        (flag or "").upper() in ("1", "ON", "YES", "TRUE") for flag in flags
    )


def _endpoint(endpoint: str | None) -> str | None:
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


def _progress_disabled(progress: bool | None) -> bool:
    if progress is not None:
        return not progress
    from huggingface_hub.utils import are_progress_bars_disabled

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
    import requests
    from tqdm.auto import tqdm

    destination = Path(destination)
    partial = destination.with_name(destination.name + ".incomplete")
    disable = _progress_disabled(progress)
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
                    f"download of {url} broke off ({_describe(error)}); attempt {attempt + 1} of {retries + 1}"
                )
    finally:
        partial.unlink(missing_ok=True)  # after a success it was renamed; after a failure nothing half is kept
    raise ReleaseDownloadError(f"{url}: {_describe(last_error)}")


class _Fatal(Exception):
    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


def _describe(error: BaseException | None) -> str:
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


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    atomic_write(path, json.dumps(dict(payload), indent=2))


def _read_json(path: Path) -> dict[str, Any] | None:
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
    meta = _read_json(path.with_name(path.name + ".json"))
    if meta and path.is_file() and path.stat().st_size == meta.get("size") and meta.get("url") == url:
        return ReleaseHead(path, url, meta["size"], meta["sha256"])
    return None


def check_head(path: str | os.PathLike, variant: OriginalVariant, whisper_config: Mapping[str, Any], whisper: str):
    """Reads a head with `torch.load(weights_only=True)` and checks it against the Whisper's config (`d_model`) and
    the variant's mode (TL-TR / TL-TR-512). Raises [`HeadMismatchError`] naming both shapes."""
    from .convert_original_whisper_at import load_original_head

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
    if _is_offline(local_files_only):
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
                from .convert_original_whisper_at import load_original_head

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
        _write_json(path.with_name(path.name + ".json"), {"url": url, "size": size, "sha256": digest})
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
    from huggingface_hub import snapshot_download

    variant = get_variant(name, low_compute)
    offline = _is_offline(local_files_only)
    try:
        path = Path(
            snapshot_download(
                variant.base_model,
                revision=revision,
                cache_dir=_hub_cache(cache_dir),
                endpoint=_endpoint(endpoint),
                token=token,
                local_files_only=offline,
                allow_patterns=list(CHECKPOINT_FILES),
            )
        )
    except (OSError, ValueError) as error:  # unreachable Hub, not cached while offline, HTTP errors
        from huggingface_hub import constants

        where = "in the cache (offline)" if offline else f"from {_endpoint(endpoint) or constants.ENDPOINT}"
        hub_cache = _hub_cache(cache_dir) or constants.HF_HUB_CACHE
        raise ReleaseDownloadError(
            f"could not get the Whisper {variant.base_model} {where} into {hub_cache}: {_describe(error)}"
        ) from error
    if not list(path.glob("*.safetensors")):
        raise ReleaseDownloadError(f"{variant.base_model} ({path}) holds no safetensors weights.")
    return path


# --------------------------------------------------------------------------------------------------------------------
# The resolver
# --------------------------------------------------------------------------------------------------------------------
_RECORD = "resolved.json"


def _resolved(root: Path, variant: OriginalVariant, cache_dir: str | os.PathLike | None) -> Path | None:
    """The checkpoint recorded by the last successful resolution, if all of it is still there. No network.

    A cache copied to another path (another machine's `HF_HOME`) still resolves: the checkpoint is found by its folder
    name under this cache, the Whisper snapshot by repo and commit in the Hub cache, and the head-only checkpoint's
    `base_model_name_or_path` is pointed at it again.
    """
    record = _read_json(root / "checkpoints" / variant.name / _RECORD)
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
    from huggingface_hub import snapshot_download

    def cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
        try:
            return Path(snapshot_download(repo_id, revision=revision, cache_dir=_hub_cache(cache_dir),
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
    _write_json(folder / "config.json", config)
    _write_json(
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
    offline = _is_offline(local_files_only)
    if offline:
        raise ReleaseNotCachedError(
            f"Whisper-AT variant {variant.name!r} is not in the cache {root} and downloads are off (HF_HUB_OFFLINE=1 "
            f"or local_files_only=True). Resolve it once with network access, e.g. `whisper-at-convert --variant "
            f"{variant.name} --download-only`, or copy a converted checkpoint and pass its folder."
        )
    from filelock import FileLock, Timeout

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
            _write_json(
                root / "checkpoints" / variant.name / _RECORD,
                {"path": str(published), "source": "hub", "repo_id": variant.hub_id(namespace)},
            )
            return str(published)
        return str(_convert_release(variant, root, cache_dir, endpoint, token, retries, progress))
    finally:
        lock.release()


def _published_checkpoint(variant, cache_dir, endpoint, token, namespace) -> Path | None:
    """The converted checkpoint from the Hub, or `None` when it is not published there."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        path = snapshot_download(
            variant.hub_id(namespace),
            cache_dir=_hub_cache(cache_dir),
            endpoint=_endpoint(endpoint),
            token=token,
            allow_patterns=list(CHECKPOINT_FILES),
        )
    except (RepositoryNotFoundError, RevisionNotFoundError):
        return None
    except (OSError, ValueError) as error:  # the Hub did not answer: the release path may still work
        logger.warning(
            f"could not check the Hub for {variant.hub_id(namespace)} ({_describe(error)}); trying the release"
        )
        return None
    path = Path(path)
    return path if (path / "config.json").is_file() else None


def _convert_release(variant, root: Path, cache_dir, endpoint, token, retries, progress) -> Path:
    from tqdm.auto import tqdm

    from .convert_original_whisper_at import convert_whisper_at_checkpoint

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
    steps = tqdm(total=3, desc=f"converting {variant.name}", disable=_progress_disabled(progress), leave=False)
    with steps:
        check_head(head.path, variant, whisper_config, variant.base_model)  # also for a head cached earlier
        steps.update(1)
        if not (target / "config.json").is_file():
            staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
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
        _write_json(
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


class DefaultPipelineModel(dict):
    """The `default` of the registered `"whisper-at"` pipeline: `pipeline("whisper-at")` with no model resolves the
    default variant ([`default_variant`]) when transformers asks for it, not at import.

    transformers reads a task's default as `defaults["model"]` -> `(model, revision)`
    (`transformers.pipelines.base.get_default_model_and_revision`); `tests/test_original_release.py` pins that. A
    `dict` holding the published Hub id, so that a pipeline's `save_pretrained` (which writes the registered task into
    `config.custom_pipelines`) serialises it as plain JSON.
    """

    def __init__(self) -> None:
        super().__init__(model=(get_variant(DEFAULT_VARIANT).hub_id(HUB_NAMESPACE), None))

    def __getitem__(self, key: str) -> Any:
        if key != "model":
            return super().__getitem__(key)
        return released_checkpoint(default_variant()), None


__all__ = [
    "ALIASES",
    "CHECKPOINT_FILES",
    "DEFAULT_VARIANT",
    "DefaultPipelineModel",
    "HUB_NAMESPACE",
    "HeadMismatchError",
    "ORIGINAL_VARIANTS",
    "ORIGINAL_VARIANTS_BY_NAME",
    "OriginalVariant",
    "ReleaseDownloadError",
    "ReleaseHead",
    "ReleaseNotCachedError",
    "cache_root",
    "check_head",
    "default_variant",
    "download_release_head",
    "download_url",
    "download_whisper",
    "find_original_variant",
    "get_variant",
    "head_urls",
    "is_variant_name",
    "released_checkpoint",
    "resolve_model",
    "variant_names",
]
