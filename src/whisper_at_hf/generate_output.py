"""What depends on the layout of Whisper's `generate` output (transformers' Whisper `generate` and ASR pipeline):
reading each item's tokens, word times and language from it, and nesting word chunks into segment chunks.

The pipeline's one place for these couplings; each is pinned by `tests/test_upstream_pins.py`. Depends on torch and
transformers only (it is copied beside checkpoints with the pipeline's code).
"""

from __future__ import annotations

from typing import Any

import torch


def id_to_language(generation_config: Any) -> dict[int, str]:
    """Language token id -> code (`50259 -> "en"`) from a Whisper generation config (empty for English-only)."""
    return {token_id: token[2:-2] for token, token_id in getattr(generation_config, "lang_to_id", {}).items()}


def language_code(language: str | None) -> str | None:
    """`"German"`, `"german"`, `"de"` or `"<|de|>"` -> `"de"`."""
    if language is None:
        return None
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    language = language.strip()
    if language.startswith("<|") and language.endswith("|>"):
        return language[2:-2]
    return TO_LANGUAGE_CODE.get(language.lower(), language.lower())


def language_name(language: str | None) -> str | None:
    """`"de"`, `"German"` or `"<|de|>"` -> `"german"`: the form the ASR pipeline gives `chunks[].language` (its
    `_decode_asr` writes the tokenizer's `LANGUAGES` name), so the pipeline's top-level `language` reads the same."""
    code = language_code(language)
    if code is None:
        return None
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return LANGUAGES.get(code, code)


def full_sequence(segment_list: list[dict]) -> torch.Tensor:
    """One item's full first-segment sequence (language token included) from Whisper's `return_segments` output;
    `generate` strips the init tokens from `sequences`. Pin: test_whisper_segments_hold_the_full_sequence."""
    result = segment_list[0]["result"]
    return result["sequences"] if isinstance(result, dict) else result


def times_for_language_token(times: torch.Tensor) -> torch.Tensor:
    """The ASR postprocess puts the language token in front of the tokens but not of their times, which would give
    every word the next token's time: shift the times along (token i spans t[i-1]..t[i]).
    Pin: test_asr_postprocess_prepends_the_language_token."""
    return torch.cat([times.new_zeros(times.shape[:-1] + (1,)), times], dim=-1)


def split_generated(
    generated: Any, rows: list[int], told_language: Any, word_timestamps: bool, generation_config: Any, out: dict
) -> None:
    """Spreads `generate`'s output for the decoded batch `rows` over `out` (`tokens`, `token_timestamps`,
    `lang_id`, `language`: one list entry per batch item); drops `token_timestamps` when no item has them."""
    sequences = generated["sequences"] if isinstance(generated, dict) else generated
    segments = generated.get("segments") if isinstance(generated, dict) else None
    token_timestamps = generated.get("token_timestamps") if isinstance(generated, dict) else None
    languages = id_to_language(generation_config)
    for position, row in enumerate(rows):
        out["tokens"][row] = sequences[position].long()  # a skipped (no-speech) window comes back as float []
        item_segments = segments[position] if segments is not None else None
        if word_timestamps:
            if item_segments:
                out["token_timestamps"][row] = torch.cat([s["token_timestamps"] for s in item_segments])
            elif token_timestamps is not None:
                out["token_timestamps"][row] = token_timestamps[position]
        language = None
        if item_segments:
            found = next((int(t) for t in full_sequence(item_segments).tolist() if int(t) in languages), None)
            if found is not None:
                out["lang_id"][row] = torch.tensor(found)
                language = languages[found]
        if language is None:
            given = told_language[position] if isinstance(told_language, (list, tuple)) else told_language
            language = language_code(given) if given else None
        if language is None and not getattr(generation_config, "is_multilingual", True):
            language = "en"
        out["language"][row] = language
    if all(value is None for value in out["token_timestamps"]):
        out.pop("token_timestamps")


def detect_language(model: Any, encoder_states: torch.Tensor, rows: list[int], out: dict) -> None:
    """Fills `lang_id`/`language` of `rows` from Whisper's language detection on `encoder_states` `(n, T, d)`."""
    from transformers.modeling_outputs import BaseModelOutput

    languages = id_to_language(model.generation_config)
    with torch.no_grad():
        detected = model.detect_language(encoder_outputs=BaseModelOutput(last_hidden_state=encoder_states))
    for row, token_id in zip(rows, detected.tolist()):
        if token_id in languages:
            out["lang_id"][row] = torch.tensor(token_id)
            out["language"][row] = languages[token_id]


def nest_words(segments: list[dict], words: list[dict]) -> list[dict]:
    """Segment chunks `{"text", "timestamp"}` -> the same with `"words"`: the word chunks holding their characters.

    Both lists decode the same tokens, so their non-space characters line up in order; words are handed to segments
    by character count (word times come from cross-attention alignment and may straddle segment boundaries).
    """
    nested, position = [], 0
    for segment in segments:
        remaining = len("".join(segment["text"].split()))
        held = []
        while position < len(words) and remaining > 0:
            held.append(words[position])
            remaining -= len("".join(words[position]["text"].split()))
            position += 1
        nested.append({**segment, "words": held})
    if nested and position < len(words):  # characters the segment decode dropped: keep the words anyway
        nested[-1]["words"].extend(words[position:])
    return nested


__all__ = [
    "detect_language",
    "full_sequence",
    "id_to_language",
    "language_code",
    "language_name",
    "nest_words",
    "split_generated",
    "times_for_language_token",
]
