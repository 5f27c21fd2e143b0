"""Tag class names, per language, travelling with each checkpoint.

A checkpoint carries its English names in `config.id2label` and all languages in `label_names.json`
(`{language_code: [name_0, ..., name_{C-1}]}`) beside its config. Heads trained on custom labels thus carry
their own names; the original AudioSet names are read from the original release's data files when converting
(`original_format.read_original_label_names`).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .generate_output import language_code
from .hub_utils import find_file

LABEL_NAMES_FILE = "label_names.json"


class LabelNames:
    """Class names by language code; English is always present.

    Args:
        names_by_language: `{"en": [...], "de": [...], ...}`, every list of the same length.
    """

    def __init__(self, names_by_language: Mapping[str, Sequence[str]]):
        if "en" not in names_by_language:
            raise ValueError("label names need an 'en' list.")
        size = len(names_by_language["en"])
        for language, names in names_by_language.items():
            if len(names) != size:
                raise ValueError(f"{len(names)} '{language}' label names, but {size} English ones.")
        self.names_by_language = {language: list(names) for language, names in names_by_language.items()}

    def __len__(self) -> int:
        return len(self.names_by_language["en"])

    @property
    def languages(self) -> list[str]:
        return list(self.names_by_language)

    def get(self, language: str | None = "en") -> list[str]:
        """Names in `language` (a code, `"de"`, or the pipeline's language name, `"german"`); falls back to English
        with a warning when that language has none."""
        language = language_code(language)
        if language is None or language == "en":
            return self.names_by_language["en"]
        if language not in self.names_by_language:
            warnings.warn(f"no label names for language {language!r} in this checkpoint; using English names.")
            return self.names_by_language["en"]
        return self.names_by_language[language]

    @classmethod
    def from_id2label(cls, id2label: Mapping[int, str]) -> "LabelNames":
        return cls({"en": [id2label[index] for index in sorted(int(key) for key in id2label)]})

    def save(self, directory: str | os.PathLike) -> Path:
        path = Path(directory) / LABEL_NAMES_FILE
        path.write_text(json.dumps(self.names_by_language, ensure_ascii=False, indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "LabelNames":
        with open(path, encoding="utf-8") as handle:
            return cls(json.load(handle))


def load_label_names(
    name_or_path: str | os.PathLike | None, id2label: Mapping[int, str] | None = None, revision: str | None = None
) -> LabelNames:
    """The label names of a checkpoint (local dir or Hub id), or English names from `id2label` when it has no
    `label_names.json`."""
    path = find_file(name_or_path, LABEL_NAMES_FILE, revision=revision) if name_or_path else None
    if path is not None:
        names = LabelNames.load(path)
        if id2label is not None and len(names) != len(id2label):
            raise ValueError(
                f"{LABEL_NAMES_FILE} of {name_or_path} has {len(names)} names but the config {len(id2label)} labels."
            )
        return names
    if id2label is None:
        raise ValueError(f"no {LABEL_NAMES_FILE} in {name_or_path!r} and no id2label to fall back on.")
    return LabelNames.from_id2label(id2label)


def model_label_names(model: Any, revision: str | None = None) -> LabelNames:
    """A loaded model's label names: those it carries (`model.label_names`, set when a head-only checkpoint is loaded:
    they come from the head's folder, not the base Whisper's), else its checkpoint's (`name_or_path`), else English
    names from `config.id2label`."""
    carried = getattr(model, "label_names", None)
    if isinstance(carried, LabelNames):
        return carried
    return load_label_names(getattr(model, "name_or_path", None) or None, model.config.id2label, revision=revision)


__all__ = ["LABEL_NAMES_FILE", "LabelNames", "load_label_names", "model_label_names"]
