"""The package's code beside a saved checkpoint, so it loads where this package is not installed:
`AutoModelForSpeechSeq2Seq.from_pretrained(DIR, trust_remote_code=True)` and
`pipeline("whisper-at-remote-code", model=DIR, trust_remote_code=True)`.

`WhisperForAudioTaggingAndASR.save_pretrained` (full and head-only, through `saving.py`) calls [`save_remote_code`]
once, after the checkpoint is written: it copies the modeling and pipeline modules with their relative imports into
the folder and adds `auto_map` and `custom_pipelines` to the written `config.json`. The model's in-memory config is never touched.
What that code needs beyond transformers (soundfile, soxr) is imported at the top of `pipeline_whisper_at.py`, the
module `pipeline()` names: transformers' `check_imports` reads it, and a missing package fails at load with its
`pip install ...` hint (`tests/test_remote_code.py`).

The model class is deliberately *not* registered with `register_for_auto_class`: transformers treats a registered
class as remote code, and `generate` then inspects `forward`'s signature on every decoding step (a per-token cost
plain Whisper does not pay). The config class is registered (that only matters when a config is saved).

This module is authoring code of the installed package and is itself never copied: what is copied is the config, the
model and the two pipelines with what they import relatively (tests/test_package_layout.py pins that list).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

# The task the installed package registers, and the task under which a checkpoint's own copy of the same pipeline is
# written into `config.custom_pipelines`. Two names because transformers' `pipeline()` lets a config entry shadow a
# registered task and then demands trust_remote_code: under one name, `pipeline("whisper-at", model=DIR)` would refuse
# to run the installed code (or, with trust_remote_code, run the checkpoint's copy instead of it).
PIPELINE_TASK = "whisper-at"
REMOTE_PIPELINE_TASK = "whisper-at-remote-code"
PIPELINE_MODULE = "pipeline_whisper_at"
PIPELINE_CLASS = "WhisperATPipeline"
ASR_PIPELINE_MODULE = "pipeline_asr_whisper_at"
ASR_PIPELINE_CLASS = "WhisperATSpeechRecognitionPipeline"
MODEL_AUTO_CLASS = "AutoModelForSpeechSeq2Seq"


def custom_pipelines_entry() -> dict:
    """The `config.custom_pipelines` entries: `pipeline(REMOTE_PIPELINE_TASK, trust_remote_code=True)` finds the
    checkpoint's copy of the tagging pipeline, and the stock ASR task its Whisper-processing subclass (the Hub's
    "Use this model" snippet; see `pipeline_asr_whisper_at.py`)."""
    return {
        REMOTE_PIPELINE_TASK: {
            "impl": f"{PIPELINE_MODULE}.{PIPELINE_CLASS}", "pt": (MODEL_AUTO_CLASS,), "type": "multimodal",
        },
        "automatic-speech-recognition": {
            "impl": f"{ASR_PIPELINE_MODULE}.{ASR_PIPELINE_CLASS}", "pt": (MODEL_AUTO_CLASS,), "type": "audio",
        },
    }


def _copy_modules(module_files: list[Path], save_directory: str | os.PathLike) -> None:
    """Copies `module_files` and everything they import relatively into `save_directory`, each file once."""
    from transformers.dynamic_module_utils import get_relative_import_files

    paths = set()
    for module in map(str, module_files):
        paths.update(os.path.abspath(path) for path in [module, *get_relative_import_files(module)])
    for path in sorted(paths):
        target = os.path.abspath(os.path.join(save_directory, os.path.basename(path)))
        if path != target:
            shutil.copyfile(path, target)


def save_remote_code(save_directory: str | os.PathLike, model_class: type) -> None:
    """Copies the module of `model_class` and the pipeline modules (`whisper-at`, and the stock ASR task's subclass
    in `pipeline_asr_whisper_at.py`) with their relative imports into `save_directory`, and adds
    `auto_map[AutoModelForSpeechSeq2Seq]` and the `custom_pipelines` entries to the `config.json` there (which must
    exist)."""
    config_file = Path(save_directory, "config.json")
    config = json.loads(config_file.read_text(encoding="utf-8"))

    model_file = Path(sys.modules[model_class.__module__].__file__)
    modules = [model_file]
    config["auto_map"] = {
        **config.get("auto_map", {}),
        MODEL_AUTO_CLASS: f"{model_file.stem}.{model_class.__name__}",
    }

    modules += [Path(__file__).with_name(f"{name}.py") for name in (PIPELINE_MODULE, ASR_PIPELINE_MODULE)]
    config["custom_pipelines"] = {**config.get("custom_pipelines", {}), **custom_pipelines_entry()}
    _copy_modules(modules, save_directory)
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


__all__ = ["MODEL_AUTO_CLASS", "PIPELINE_TASK", "REMOTE_PIPELINE_TASK", "custom_pipelines_entry", "save_remote_code"]
