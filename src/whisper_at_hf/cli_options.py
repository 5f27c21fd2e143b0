"""Checks of the options only the command lines take (`whisper-at`, `whisper-at --live`): `--device`. Same contract
as [`options`]; kept out of `options.py` so that a checkpoint's remote code does not carry them.
"""

from __future__ import annotations

from typing import Any


def check_device(device: Any, name: str = "device") -> Any:
    """A torch device that exists on this machine (`cpu`, `cuda`, `cuda:N`, `mps`, ...); returned as given.

    Unknown names and accelerators that are absent (no CUDA, no MPS, a GPU index past the last) are refused here,
    before a model is loaded onto them.
    """
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"{name} {device!r} is not a device: use cpu, cuda, cuda:N or mps.") from None
    kind = parsed.type
    if kind in ("cpu", "meta"):
        return device
    if kind == "mps":
        available, count = torch.backends.mps.is_available(), 1
    else:
        backend = getattr(torch, kind, None)
        available = bool(getattr(backend, "is_available", lambda: False)())
        count = backend.device_count() if available and hasattr(backend, "device_count") else None
    if not available:
        raise ValueError(f"{name} {device}: {kind.upper()} is not available on this machine (use {name} cpu)")
    if parsed.index is not None and count is not None and parsed.index >= count:
        raise ValueError(f"{name} {device}: no such {kind.upper()} device (this machine has {count})")
    return device


__all__ = ["check_device"]
