"""`whisper_at_hf.remote_code`: the code a checkpoint carries declares what it needs the way transformers checks it,
so a missing package fails at load with a `pip install ...` hint, not with a bare `ModuleNotFoundError` mid-call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_whisper
from transformers.dynamic_module_utils import get_imports

from whisper_at_hf import WhisperForAudioTaggingAndASR

# What every environment that loads a transformers checkpoint has (transformers and its own requirements).
WITH_TRANSFORMERS = {"transformers", "torch", "numpy", "huggingface_hub", "safetensors"}
ENTRY_MODULES = ("pipeline_whisper_at.py", "pipeline_asr_whisper_at.py", "modeling_whisper_at.py")


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("remote")
    WhisperForAudioTaggingAndASR.from_whisper(tiny_whisper(), num_labels=3).save_pretrained(folder)
    return folder


def third_party(path: Path) -> set[str]:
    return {name for name in get_imports(path) if name not in sys.stdlib_module_names} - {"__future__"}


def test_the_whisper_at_pipeline_declares_every_package_its_code_imports(saved):
    """For a local folder transformers checks only the module `pipeline()` names: it must name what the code it
    imports needs beyond transformers (soundfile, soxr)."""
    needed = set().union(*(third_party(path) for path in saved.glob("*.py"))) - WITH_TRANSFORMERS
    assert {"soundfile", "soxr"} <= needed
    assert needed <= third_party(saved / "pipeline_whisper_at.py"), needed
    for entry in ENTRY_MODULES:  # the others need nothing beyond transformers (the stock ASR task decodes itself)
        assert third_party(saved / entry) - WITH_TRANSFORMERS <= needed, entry


@pytest.mark.parametrize("missing", ["soundfile", "soxr"])
def test_a_missing_package_fails_at_load_with_a_pip_hint(saved, missing):
    """Without the package and without `missing`, resolving the pipeline class as `pipeline()` does raises
    transformers' `ImportError` naming it, before any audio is read."""
    script = f"""
import importlib.abc, sys
sys.modules["whisper_at_hf"] = None  # the package is not importable here


class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {missing!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)


sys.meta_path.insert(0, Missing())
from transformers.dynamic_module_utils import get_class_from_dynamic_module

try:
    get_class_from_dynamic_module("pipeline_whisper_at.WhisperATPipeline", {str(saved)!r})
except ImportError as error:
    print("ImportError:", error)
else:
    print("loaded")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout.strip().splitlines()[-1]
    assert out.startswith("ImportError:") and f"pip install {missing}" in out, out


def test_installed_task_and_the_checkpoints_copy_have_their_own_names(saved):
    """The saved config keeps the remote copy's entry under `REMOTE_PIPELINE_TASK`, so the installed "whisper-at"
    is not shadowed by it (transformers' pipeline() would demand trust_remote_code), while the copy's task asks for
    trust_remote_code as transformers does for any code beside a checkpoint."""
    import json

    from transformers import AutoConfig, pipeline

    from whisper_at_hf.remote_code import PIPELINE_TASK, REMOTE_PIPELINE_TASK

    written = json.loads((saved / "config.json").read_text())["custom_pipelines"]
    assert REMOTE_PIPELINE_TASK in written and PIPELINE_TASK not in written
    assert AutoConfig.from_pretrained(saved).custom_pipelines == written  # loaded as saved, nothing left out
    with pytest.raises(ValueError, match="trust_remote_code=True"):
        pipeline(REMOTE_PIPELINE_TASK, model=str(saved))
    # the installed task is found in the registry; it gets past the config (here to the missing processor)
    with pytest.raises(OSError, match="has no processor"):
        pipeline(PIPELINE_TASK, model=str(saved))
