"""`whisper_at_hf.cli_options`: `--device` is checked before a model is loaded onto it."""

from __future__ import annotations

import pytest


def test_devices_are_checked_before_use(monkeypatch):
    import torch

    from whisper_at_hf.cli_options import check_device

    assert check_device("cpu") == "cpu" and check_device(torch.device("cpu")) == torch.device("cpu")
    for bad in ("foo", "cuda:x", "", "gpu"):
        with pytest.raises(ValueError, match=f"--device {bad!r} is not a device: use cpu, cuda, cuda:N or mps"):
            check_device(bad, "--device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match="--device cuda: CUDA is not available on this machine \\(use --device cpu\\)"):
        check_device("cuda", "--device")
    with pytest.raises(ValueError, match="--device mps: MPS is not available on this machine"):
        check_device("mps", "--device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert check_device("cuda:1") == "cuda:1"
    with pytest.raises(ValueError, match="device cuda:2: no such CUDA device \\(this machine has 2\\)"):
        check_device("cuda:2")
