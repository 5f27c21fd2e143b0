"""The number rules of user-facing options (part of [`options`], which re-exports them): ranges of counts, seconds
and probabilities, and the one `at_time_res` rule. Every check raises `ValueError` naming the option, the value and
what is allowed, and returns the value in its canonical type.

Standard library only, and no import of the package: the command lines' parsers (`whisper_at_hf_cli`) load this file
by path, so their usage errors answer without torch or transformers (and a checkpoint's remote code carries it).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

# Whisper's geometry, for checks made before a model (and its config) is loaded: 0.4 s pooled frames (20 encoder
# frames of 20 ms) and 30 s seen by one encoder pass. With a config at hand, `config.at_window_frames` decides.
POOLED_FRAME_SECONDS = 0.4
WINDOW_SECONDS = 30.0
# Upper bounds that keep memory bounded by the input, not by an option: beams multiply the decoder's cache (3000
# beams took 19.8 GB); a decoder sees at most `max_target_positions` tokens (448 for every Whisper), of which up to
# 4 are start tokens (start of transcript, language, task, no-timestamps); a chunk shorter than a few seconds still
# costs a padded 30 s encoder pass, so tiny chunks multiply the work without bound.
MAX_NUM_BEAMS = 64
MAX_TARGET_POSITIONS = 448
DECODER_START_TOKENS = 4
MIN_CHUNK_SECONDS = 5.0
TASKS = ("transcribe", "translate")
# live steps (seconds of new audio per step): measured best on 2 CPU threads with tiny.en (benchmarks/live.py)
LIVE_STEP_SECONDS = 0.8


def window_frames(at_time_res: Any, frame_seconds: float, max_frames: int) -> int:
    """Pooled frames in a tag window of `at_time_res` seconds: THE check of `at_time_res` (the config's, and the
    CLI's before a config is loaded, with Whisper's 0.4 s frames and 75 frames per pass).

    Raises `ValueError` unless `at_time_res` is a positive multiple of `frame_seconds` and at most `max_frames`
    frames (what one encoder pass sees: a longer window means nothing to the head, and would only cost memory).
    """
    # any real number (numpy scalars too), but not a bool
    is_number = isinstance(at_time_res, numbers.Real) and type(at_time_res).__name__ not in ("bool", "bool_")
    frames = float(at_time_res) / frame_seconds if is_number else float("nan")
    if not (math.isfinite(frames) and frames > 0 and abs(frames - round(frames)) < 1e-6):
        raise ValueError(
            f"at_time_res must be a positive multiple of {frame_seconds:g} s (e.g. {frame_seconds:g}, "
            f"{2 * frame_seconds:g}, 10), got {at_time_res!r}."
        )
    if round(frames) > max_frames:
        raise ValueError(
            f"at_time_res must be at most {max_frames * frame_seconds:g} s (what one Whisper pass sees; the head "
            f"cannot use a longer window), got {at_time_res!r}."
        )
    return int(round(frames))


def is_real_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and not _is_bool(value)


def _is_bool(value: Any) -> bool:
    return type(value).__name__ in ("bool", "bool_")


def is_whole_number(value: Any) -> bool:
    """An int, a numpy integer or a float holding a whole number (`5.0`), but not a bool."""
    if isinstance(value, numbers.Integral) and not _is_bool(value):
        return True
    return is_real_number(value) and math.isfinite(value) and float(value).is_integer()


def check_int(name: str, value: Any, minimum: int = 1, maximum: int | None = None, why: str = "") -> int:
    """A whole number `>= minimum` (and `<= maximum`, if given; `why` says where that bound comes from)."""
    if not is_whole_number(value) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum}, got {value!r}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be a whole number <= {maximum}{why}, got {value!r}.")
    return int(value)


def check_number(
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
    allow_infinite: bool = False,
) -> float:
    """A real number within `[minimum, maximum]` (`(minimum, maximum]` with `strict_minimum`); never NaN, and
    finite unless `allow_infinite` (e.g. a threshold of `-inf` that keeps everything)."""
    ok = is_real_number(value) and not math.isnan(value) and (allow_infinite or math.isfinite(value))
    if ok and minimum is not None:
        ok = value > minimum if strict_minimum else value >= minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        low = "" if minimum is None else f"{'>' if strict_minimum else '>='} {minimum:g}"
        high = "" if maximum is None else f"<= {maximum:g}"
        allowed = " and ".join(part for part in (low, high) if part) or "finite"
        raise ValueError(f"{name} must be a number {allowed}, got {value!r}.")
    return float(value)


def check_tag_threshold(value: Any) -> float:
    """A probability in `[0, 1]`."""
    return check_number("tag_threshold", value, 0.0, 1.0)


def check_event_values(
    threshold: Any = None, offset_threshold: Any = None, min_duration: Any = None, min_gap: Any = None
) -> dict[str, float | None]:
    """Each event option on its own: `event_threshold` (onset) in `(0, 1]`, `event_offset_threshold` in `[0, 1]`,
    `event_min_duration` / `event_min_gap` seconds `>= 0`; the ones given, canonical (`None` stays). That the offset
    is at most the onset (given or default) is `options.check_event_options`'s rule (the default lives in `tags`)."""
    return {
        "event_threshold": None if threshold is None else check_number("event_threshold", threshold, 0.0, 1.0, True),
        "event_offset_threshold": None
        if offset_threshold is None
        else check_number("event_offset_threshold", offset_threshold, 0.0, 1.0),
        "event_min_duration": None if min_duration is None else check_number("event_min_duration", min_duration, 0.0),
        "event_min_gap": None if min_gap is None else check_number("event_min_gap", min_gap, 0.0),
    }


def check_sampling_rate(value: Any) -> int:
    """The sampling rate of array inputs: a positive whole number of Hz."""
    if not is_whole_number(value) or value <= 0:
        raise ValueError(f"sampling_rate must be a positive whole number of Hz (e.g. 16000), got {value!r}.")
    return int(value)


def check_at_time_res(value: Any, config: Any = None) -> float:
    """A tag window in seconds: a positive multiple of the pooled frame (0.4 s), at most one Whisper pass (30 s).

    With a `WhisperATConfig`, its `at_window_frames` decides (the geometry of that checkpoint); without one (e.g. in
    the CLI before the model is loaded), Whisper's 0.4 s / 30 s.
    """
    if config is not None:
        config.at_window_frames(float(value) if is_real_number(value) else value)  # numpy scalars as Python floats
    else:
        window_frames(value, POOLED_FRAME_SECONDS, round(WINDOW_SECONDS / POOLED_FRAME_SECONDS))
    return float(value)


def check_num_beams(value: Any, name: str = "num_beams") -> int:
    """A beam count in `[1, MAX_NUM_BEAMS]`."""
    return check_int(name, value, 1, MAX_NUM_BEAMS, " (each beam holds its own copy of the decoder's cache)")


def check_max_new_tokens(value: Any, config: Any = None, name: str = "max_new_tokens") -> int:
    """New tokens per 30 s window: at least 1, at most what the decoder can see (`config.max_target_positions`,
    448 without a config) less its start tokens."""
    positions = getattr(config, "max_target_positions", None) or MAX_TARGET_POSITIONS
    why = f" (the decoder sees {positions} tokens, up to {DECODER_START_TOKENS} of them start tokens)"
    return check_int(name, value, 1, positions - DECODER_START_TOKENS, why)


def check_chunk_length_s(value: Any, name: str = "chunk_length_s", allow_off: bool = True) -> float:
    """Seconds per chunk of chunked long-form decoding, in `[MIN_CHUNK_SECONDS, WINDOW_SECONDS]`; also `0` (no
    chunking, the pipeline's default) where `allow_off`."""
    if allow_off and is_real_number(value) and value == 0:
        return 0.0
    if not (is_real_number(value) and MIN_CHUNK_SECONDS <= value <= WINDOW_SECONDS):
        off = "0 (no chunking) or " if allow_off else ""
        raise ValueError(
            f"{name} must be {off}a number of seconds >= {MIN_CHUNK_SECONDS:g} and <= {WINDOW_SECONDS:g} (every "
            f"chunk costs a padded {WINDOW_SECONDS:g} s encoder pass, so shorter ones multiply the work), "
            f"got {value!r}."
        )
    return float(value)


__all__ = [
    "DECODER_START_TOKENS", "MAX_NUM_BEAMS", "MAX_TARGET_POSITIONS", "MIN_CHUNK_SECONDS", "POOLED_FRAME_SECONDS",
    "TASKS", "WINDOW_SECONDS", "check_at_time_res", "check_chunk_length_s", "check_event_values", "check_int",
    "check_max_new_tokens", "check_num_beams", "check_number", "check_sampling_rate", "check_tag_threshold",
    "is_real_number", "is_whole_number", "window_frames",
]  # fmt: skip
