"""The original Whisper-AT release, in one import: the variant table ([`original_variants`]), the downloads
([`release_downloads`]) and the resolver ([`release_resolver`]). Nothing in the package imports this module; it keeps
the documented names where users import them (`whisper_at_hf.original_release.ORIGINAL_VARIANTS`).
"""

from __future__ import annotations

from .original_variants import (
    ALIASES,
    DEFAULT_VARIANT,
    DEFAULT_VARIANT_ENV,
    HUB_NAMESPACE,
    HUB_NAMESPACE_ENV,
    ORIGINAL_VARIANTS,
    ORIGINAL_VARIANTS_BY_NAME,
    RELEASE_HOST,
    OriginalVariant,
    default_variant,
    find_original_variant,
    get_variant,
    hub_namespace,
    is_variant_name,
    variant_names,
)
from .release_downloads import (
    CACHE_ENV,
    CHECKPOINT_FILES,
    RELEASE_ENDPOINT_ENV,
    RELEASE_MIRROR_ENV,
    HeadMismatchError,
    ReleaseDownloadError,
    ReleaseHead,
    ReleaseNotCachedError,
    cache_root,
    check_head,
    download_release_head,
    download_url,
    download_whisper,
    head_urls,
)
from .release_resolver import released_checkpoint, resolve_model

__all__ = [
    "ALIASES",
    "CACHE_ENV",
    "CHECKPOINT_FILES",
    "DEFAULT_VARIANT",
    "DEFAULT_VARIANT_ENV",
    "HUB_NAMESPACE",
    "HUB_NAMESPACE_ENV",
    "HeadMismatchError",
    "ORIGINAL_VARIANTS",
    "ORIGINAL_VARIANTS_BY_NAME",
    "OriginalVariant",
    "RELEASE_ENDPOINT_ENV",
    "RELEASE_HOST",
    "RELEASE_MIRROR_ENV",
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
    "hub_namespace",
    "is_variant_name",
    "released_checkpoint",
    "resolve_model",
    "variant_names",
]
