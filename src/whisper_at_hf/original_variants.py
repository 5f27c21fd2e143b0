"""The original Whisper-AT release as data: its 16 heads (names, mAP, head sizes, download URLs, the transformers
Whisper each head belongs to), the original's aliases and the default variant.

[`ORIGINAL_VARIANTS`] is THE table of the release; the model cards, `compat`, the CLI, the converter and the resolver
all read it. This module imports nothing of the package.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Hub organisation of the converted original checkpoints (`whisper-at-convert --variant all --push-to-hub ORG`).
HUB_NAMESPACE = "whisper-at-hf"
#: The variant used when none is named: small (Whisper 244M, tags at 39.8 mAP), see the README.
DEFAULT_VARIANT = "small"
#: Host of the original release's URLs (what `WHISPER_AT_HF_RELEASE_ENDPOINT` replaces).
RELEASE_HOST = "https://www.dropbox.com"

HUB_NAMESPACE_ENV = "WHISPER_AT_HF_HUB_NAMESPACE"
DEFAULT_VARIANT_ENV = "WHISPER_AT_HF_DEFAULT_VARIANT"

# Whisper size -> (encoder layers, d_model, Whisper parameters)
WHISPER_SIZES: dict[str, tuple[int, int, str]] = {
    "tiny": (4, 384, "39M"),
    "base": (6, 512, "74M"),
    "small": (12, 768, "244M"),
    "medium": (24, 1024, "769M"),
    "large": (32, 1280, "1550M"),
}

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
                f"there is no low-compute (TL-TR-512) head for {variant.whisper!r} (no low-dim head: its width is "
                f"not above 512); it exists only for {', '.join(with_low)}."
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


__all__ = [
    "ALIASES",
    "DEFAULT_VARIANT",
    "DEFAULT_VARIANT_ENV",
    "HUB_NAMESPACE",
    "HUB_NAMESPACE_ENV",
    "ORIGINAL_VARIANTS",
    "ORIGINAL_VARIANTS_BY_NAME",
    "OriginalVariant",
    "RELEASE_HOST",
    "WHISPER_SIZES",
    "default_variant",
    "find_original_variant",
    "get_variant",
    "hub_namespace",
    "is_variant_name",
    "variant_names",
]
