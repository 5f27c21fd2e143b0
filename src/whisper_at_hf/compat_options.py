"""Checks of the options only the original API (`compat.py`) takes: `temperature`, the decoding thresholds,
`suppress_tokens`, a `transcribe` result handed back to `parse_at_label`, `include_class_list`. Same contract as
[`options`] (each raises `ValueError` naming the option and returns the value in its canonical type); kept out of
`options.py` so that a checkpoint's remote code does not carry them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from .options import check_number, is_real_number, is_whole_number


def check_temperature(value: Any) -> float | tuple[float, ...]:
    """Whisper's sampling temperature: a number `>= 0` or a non-empty list of them (the fallback schedule)."""
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values or not all(is_real_number(item) and math.isfinite(item) and item >= 0 for item in values):
        raise ValueError(f"temperature must be a number >= 0 or a non-empty list of them, got {value!r}.")
    return tuple(float(item) for item in values) if isinstance(value, (list, tuple)) else float(value)


def check_optional_number(
    name: str, value: Any, minimum: float | None = None, maximum: float | None = None
) -> float | None:
    """`None` (the check is off), or a finite number within the bounds (e.g. `no_speech_threshold`)."""
    return None if value is None else check_number(name, value, minimum, maximum)


def check_suppress_tokens(value: Any) -> list[int] | None:
    """Token ids to suppress: a list, or a comma-separated string (`"-1"`, `"50256,50257"`); `-1` stands for the
    checkpoint's default set. `None` keeps the checkpoint's."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if isinstance(items, (bytes, Mapping)) or not isinstance(items, Iterable):
        items = [items]
    tokens = []
    for item in items:
        text = item.strip() if isinstance(item, str) else item
        if text == "":
            continue
        number = int(text) if isinstance(text, str) and text.lstrip("-").isdigit() else text
        if not is_whole_number(number) or number < -1:
            raise ValueError(
                'suppress_tokens must be token ids: a list or a comma-separated string such as "-1" or '
                f'"50256,50257" (-1 = the checkpoint\'s default set), got {value!r}.'
            )
        tokens.append(int(number))
    return tokens


def check_tagging_result(result: Any) -> tuple[float, Any]:
    """A `transcribe` result as `parse_at_label` reads it: a dict with `at_time_res` (seconds) and `audio_tag`, a
    `(num_windows, num_labels)` array of logits. Returns `(at_time_res, audio_tag)`."""
    if not isinstance(result, Mapping):
        raise ValueError(
            f"result must be what transcribe() returned (a dict with 'audio_tag' and 'at_time_res'), got {result!r}."
        )
    missing = [key for key in ("audio_tag", "at_time_res") if result.get(key) is None]
    if missing:
        raise ValueError(f"result has no {' or '.join(repr(key) for key in missing)}: pass what transcribe() returned.")
    at_time_res = check_number("result['at_time_res']", result["at_time_res"], 0.0, strict_minimum=True)
    audio_tag = result["audio_tag"]
    shape = tuple(audio_tag.shape) if hasattr(audio_tag, "shape") else None
    if shape is None or len(shape) != 2:
        raise ValueError(
            "result['audio_tag'] must be a (num_windows, num_labels) array of logits, got "
            f"{'shape ' + str(shape) if shape is not None else type(audio_tag).__name__}."
        )
    return at_time_res, audio_tag


def check_class_indices(name: str, indices: Any, num_labels: int) -> list[int]:
    """Class indices (e.g. the original API's `include_class_list`): whole numbers in `[0, num_labels)`."""
    if isinstance(indices, (str, bytes, Mapping)) or not isinstance(indices, Iterable):
        raise ValueError(f"{name} must be a list of class indices, got {indices!r}.")
    indices = list(indices)
    bad = [index for index in indices if not is_whole_number(index) or not 0 <= index < num_labels]
    if bad:
        raise ValueError(f"{name} must hold whole class indices in [0, {num_labels}), got {bad[:5]!r}.")
    return [int(index) for index in indices]


__all__ = [
    "check_class_indices",
    "check_optional_number",
    "check_suppress_tokens",
    "check_tagging_result",
    "check_temperature",
]
