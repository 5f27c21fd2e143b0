"""labels.py: label names per language, looked up by code or by the pipeline's language name."""

from __future__ import annotations

import pytest

from whisper_at_hf.generate_output import language_code, language_name
from whisper_at_hf.labels import LabelNames


def test_names_by_code_or_by_the_pipelines_language_name():
    names = LabelNames({"en": ["Speech", "Music"], "de": ["Sprache", "Musik"]})
    assert names.get("de") == names.get("german") == names.get("German") == names.get("<|de|>") == ["Sprache", "Musik"]
    assert names.get(None) == names.get("english") == ["Speech", "Music"]
    with pytest.warns(UserWarning, match="no label names for language 'fr'"):
        assert names.get("french") == ["Speech", "Music"]


def test_language_name_is_the_asr_pipelines_form():
    """The ASR pipeline writes chunks[].language as the tokenizer's LANGUAGES name; ours reads the same."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    assert language_name("de") == language_name("German") == language_name("<|de|>") == LANGUAGES["de"] == "german"
    assert language_name(None) is None and language_code(language_name("fr")) == "fr"
