"""The `whisper-at` pipeline's code beside a saved checkpoint, so `pipeline("whisper-at", model=DIR,
trust_remote_code=True)` works where this package is not installed.

`WhisperForAudioTaggingAndASR.save_pretrained` calls [`save_pipeline_code`] once, after transformers wrote the
checkpoint: it copies `pipeline_whisper_at.py` and its relative imports into the folder and adds the
`custom_pipelines` entry to the written `config.json`. The model's in-memory config is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from transformers.utils import logging

logger = logging.get_logger(__name__)

PIPELINE_TASK = "whisper-at"
PIPELINE_MODULE = "pipeline_whisper_at"
PIPELINE_CLASS = "WhisperATPipeline"
ASR_PIPELINE_MODULE = "pipeline_asr_whisper_at"


def custom_pipelines_entry() -> dict:
    """The `config.custom_pipelines` entry with which `pipeline(PIPELINE_TASK, trust_remote_code=True)` finds the
    pipeline class."""
    return {
        PIPELINE_TASK: {
            "impl": f"{PIPELINE_MODULE}.{PIPELINE_CLASS}",
            "pt": ("AutoModelForSpeechSeq2Seq",),
            "type": "multimodal",
        }
    }


def save_pipeline_code(save_directory: str | os.PathLike) -> None:
    """Copies the pipeline modules (`whisper-at`, and the stock ASR task's subclass in `pipeline_asr_whisper_at.py`)
    and their relative imports into `save_directory`, and adds their `custom_pipelines` entries to the `config.json`
    there (which must exist)."""
    from transformers.dynamic_module_utils import get_relative_import_files

    module_file = Path(__file__).with_name(f"{PIPELINE_MODULE}.py")
    asr_module_file = Path(__file__).with_name(f"{ASR_PIPELINE_MODULE}.py")
    if not module_file.is_file() or not asr_module_file.is_file():  # this file is remote code, loaded alone
        logger.warning(f"pipeline modules not found beside {Path(__file__).name}: no pipeline code is saved.")
        return
    from .pipeline_asr_whisper_at import custom_pipelines_entry as asr_custom_pipelines_entry

    for path in [str(module_file), *get_relative_import_files(str(module_file)), str(asr_module_file)]:
        target = os.path.join(save_directory, os.path.basename(path))
        if os.path.abspath(path) != os.path.abspath(target):
            shutil.copyfile(path, target)
    config_file = Path(save_directory, "config.json")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    entries = {**custom_pipelines_entry(), **asr_custom_pipelines_entry()}
    config["custom_pipelines"] = {**config.get("custom_pipelines", {}), **entries}
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


__all__ = ["PIPELINE_TASK", "custom_pipelines_entry", "save_pipeline_code"]
