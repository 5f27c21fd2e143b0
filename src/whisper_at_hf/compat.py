"""The original `whisper-at` package's API, backed by whisper-at-hf's model and `pipeline("whisper-at")`.

Moving over is a one-line change:

    import whisper_at_hf.compat as whisper           # was: import whisper_at as whisper
    model = whisper.load_model("large-v2")           # or at_low_compute=True
    result = model.transcribe("audio.mp3", at_time_res=10)
    tags = whisper.parse_at_label(result, language="follow_asr", top_k=5, p_threshold=-1,
                                  include_class_list=list(range(527)))

Variant names (`"tiny"` ... `"large-v2"`, `"large"` = large-v2, `at_low_compute=True` for the TL-TR-512 heads) are
resolved by `whisper_at_hf.released_checkpoint` as the original resolves them: downloaded on first use (the converted
checkpoint from the Hub, [`CHECKPOINTS`], or else the original release's head converted onto the Whisper from the
Hub) and cached. Point a name at your own converted checkpoint per call with `load_model(name, checkpoints={...})`
or for the process with the `WHISPER_AT_HF_CHECKPOINTS` environment variable (a JSON object
`{"large-v2": "/models/whisper-at-large-v2", "large-v2_low": "org/repo"}`, read at every `load_model`); the argument
wins. No module state is changed: [`CHECKPOINTS`] is the read-only published table. Any other `name_or_path` is taken
as a transformers checkpoint dir or Hub id.

Intended differences from the original:
- `parse_at_label` applies `include_class_list` BEFORE taking the top-k (the original takes the top-k of all classes
  first and then drops the ones not listed, so a wanted class outside the overall top-k was silently lost). Whenever
  the original's top-k already holds the wanted classes, both give the same answer.
- Label names come from the checkpoint (`config.id2label` and its `label_names.json`), so custom heads carry theirs;
  `transcribe` stores them in `result["label_names"]`.
- Decoding is transformers' Whisper `generate` (through the pipeline), not OpenAI's decoder: the options map onto it
  (see [`WhisperATModel.transcribe`]); options without an equivalent are ignored with a warning.
- Per-segment decoding statistics that transformers does not report are `None` (see `transcribe`).
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from transformers.utils import logging

from .audio import load_audio
from .compat_options import (
    check_class_indices,
    check_optional_number,
    check_suppress_tokens,
    check_tagging_result,
    check_temperature,
)
from .generate_output import language_code
from .hub_utils import is_hub_id
from .labels import LabelNames, load_label_names
from .model_sources import ModelSourceNotFoundError, check_model_source
from .modeling_whisper_at import WhisperForAudioTaggingAndASR
from .options import (
    check_at_time_res,
    check_int,
    check_language_and_task,
    check_max_new_tokens,
    check_num_beams,
    check_number,
)
from .original_format import read_original_label_names
from .original_variants import (
    ALIASES,
    HUB_NAMESPACE,
    ORIGINAL_VARIANTS,
    get_variant,
    is_variant_name,
)
from .release_resolver import released_checkpoint
from .remote_code import PIPELINE_TASK as TASK
from .tags import candidate_ids, top_tags

logger = logging.get_logger(f"transformers.{__name__}")  # under transformers: its verbosity rules ours

# ----------------------------------------------------------------------------------------------------------------------
# Variant name -> checkpoint: the one table
# ----------------------------------------------------------------------------------------------------------------------
#: Environment variable holding a JSON object of overrides, `{"variant": "dir or Hub id"}`; wins over the table.
CHECKPOINTS_ENV = "WHISPER_AT_HF_CHECKPOINTS"
#: Original variant (`"large-v2"`, `"large-v2_low"` for the TL-TR-512 head, ...) -> its published Hub id. Generated
#: from the release table so names, cards and this table cannot drift apart; read-only (overrides are arguments or
#: `WHISPER_AT_HF_CHECKPOINTS`, never module state). A name mapped to its published Hub id is resolved by
#: `released_checkpoint` (Hub, else the original release, converted).
CHECKPOINTS: Mapping[str, str] = MappingProxyType(
    {variant.name: f"{HUB_NAMESPACE}/{variant.repo_name}" for variant in ORIGINAL_VARIANTS}
)

_WHISPER_NAMES = tuple(dict.fromkeys(variant.whisper for variant in ORIGINAL_VARIANTS))


class CheckpointNotAvailableError(FileNotFoundError):
    """The checkpoint a name resolves to is neither a local dir nor reachable on the Hub (or in its cache)."""


def available_models() -> list[str]:
    """The original variant names `load_model` accepts (each also with `at_low_compute=True` where that head exists)."""
    return [*_WHISPER_NAMES, *(alias for alias, name in ALIASES.items() if name in _WHISPER_NAMES)]


def checkpoint_for(
    name: str, at_low_compute: bool = False, checkpoints: Mapping[str, str | os.PathLike] | None = None
) -> str | None:
    """The checkpoint (dir or Hub id) an original variant name maps to: `checkpoints` (variant name or alias -> dir or
    Hub id), then `WHISPER_AT_HF_CHECKPOINTS`, then [`CHECKPOINTS`]. `None` when `name` is not a variant name (then it
    is a checkpoint dir or Hub id itself).

    Raises:
        ValueError: `at_low_compute=True` for a variant without a TL-TR-512 head (tiny, tiny.en, base, base.en), or a
            malformed `WHISPER_AT_HF_CHECKPOINTS`.
    """
    if not is_variant_name(name):
        return None
    key = _variant_key(name, at_low_compute)
    given = {_canonical_key(variant): os.fspath(path) for variant, path in (checkpoints or {}).items()}
    return given.get(key) or _env_overrides().get(key) or CHECKPOINTS[key]


def _variant_key(name: str, at_low_compute: bool) -> str:
    # the release table resolves names and aliases, and names the variants with a TL-TR-512 head
    return get_variant(name, at_low_compute).name


def _env_overrides() -> dict[str, str]:
    raw = os.environ.get(CHECKPOINTS_ENV)
    if not raw:
        return {}
    try:
        overrides = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"{CHECKPOINTS_ENV} must be a JSON object {{variant: dir or Hub id}}: {error}") from None
    if not isinstance(overrides, dict) or not all(isinstance(value, str) for value in overrides.values()):
        raise ValueError(f"{CHECKPOINTS_ENV} must be a JSON object {{variant: dir or Hub id}}, got {raw!r}.")
    # keys may use the alias ("large", "large_low") as in the original
    return {_canonical_key(key): value for key, value in overrides.items()}


def _canonical_key(key: str) -> str:
    return get_variant(key).name


# ----------------------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------------------
def load_model(
    name_or_path: str | os.PathLike,
    device: str | torch.device | None = None,
    at_low_compute: bool = False,
    download_root: str | os.PathLike | None = None,
    in_memory: bool = False,
    dtype: torch.dtype | None = None,
    checkpoints: Mapping[str, str | os.PathLike] | None = None,
) -> "WhisperATModel":
    """Loads a Whisper-AT model as the original `whisper_at.load_model` does, as a whisper-at-hf model + pipeline.

    Args:
        name_or_path: an original variant name (`"tiny"`, ..., `"large-v2"`, `"large"`; see [`available_models`]),
            downloaded on first use and cached by `whisper_at_hf.released_checkpoint` unless pointed elsewhere
            (`checkpoints`, `WHISPER_AT_HF_CHECKPOINTS`), or a transformers checkpoint dir or Hub id (full or
            head-only).
        device: `"cpu"`, `"cuda"`, ...; default CUDA when available.
        at_low_compute: with a variant name, the TL-TR-512 head (`<variant>_low`), which exists for small, small.en,
            medium, medium.en, large-v1 and large-v2 only. With a checkpoint path, its config decides the head.
        download_root: cache folder for the downloads and converted checkpoints (`cache_dir`); default the Hugging
            Face cache.
        in_memory: accepted for compatibility; transformers loads safetensors memory-mapped either way.
        dtype: weights' dtype; default float32, as the original (whose `transcribe(fp16=True)`, the default, computes
            in float16 on CUDA: here by autocast, per call, so threads sharing the model each get their precision).
        checkpoints: variant name (or alias, `"large_low"`) -> your own checkpoint dir or Hub id, e.g. a
            `whisper-at-convert` output: `load_model("large", checkpoints={"large-v2": "/models/at-large-v2"})`.
            Wins over `WHISPER_AT_HF_CHECKPOINTS`.

    Raises:
        CheckpointNotAvailableError: (a `FileNotFoundError`) the checkpoint is neither a local dir nor on the Hub or
            in its cache; a mistyped variant name lists the variants and the closest one.
        ValueError: `at_low_compute=True` for a variant without a low-dim head; `""`, a plain Whisper folder (the
            message says how to add a head), a folder of another model type (`model_sources.check_model_source`).
    """
    from transformers import WhisperProcessor, pipeline

    del in_memory
    name = os.fspath(name_or_path)
    variant_checkpoint = checkpoint_for(name, at_low_compute, checkpoints)
    if variant_checkpoint is None:  # a folder or Hub id: checked as every entry point checks --model
        _check_source(name, download_root)
    checkpoint = variant_checkpoint or name
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if dtype is None:
        dtype = torch.float32  # as the original: float32 weights; `transcribe(fp16=True)` computes in float16 on CUDA
    cache_dir = os.fspath(download_root) if download_root is not None else None

    local = _resolved_checkpoint(name, checkpoint, variant_checkpoint, at_low_compute, cache_dir)
    model = WhisperForAudioTaggingAndASR.from_pretrained(local, dtype=dtype, cache_dir=cache_dir)
    if at_low_compute and not variant_checkpoint and model.config.at_low_dim is None:
        warnings.warn(f"at_low_compute=True, but {checkpoint} has a full-width head (its config decides the head).")
    try:
        processor = WhisperProcessor.from_pretrained(local)
    except OSError:
        # head-only checkpoints may leave the processor to the Whisper they name
        base = model.config.base_model_name_or_path
        if not base:
            raise
        processor = WhisperProcessor.from_pretrained(base, cache_dir=cache_dir)
    tagger = pipeline(
        TASK,
        model=model.to(device),
        tokenizer=processor.tokenizer,
        feature_extractor=processor.feature_extractor,
        device=device,
    )
    label_names = load_label_names(local, model.config.id2label)
    return WhisperATModel(tagger, label_names, checkpoint)


def _resolved_checkpoint(
    name: str, checkpoint: str, variant_checkpoint: str | None, at_low_compute: bool, cache_dir: str | None
) -> str:
    """The local dir to load: a released variant not pointed elsewhere through `released_checkpoint` (downloaded
    once, cached), anything else as a checkpoint dir or Hub id."""
    key = _variant_key(name, at_low_compute) if variant_checkpoint else None
    if key is None or variant_checkpoint != CHECKPOINTS[key]:
        return _local_checkpoint(checkpoint, cache_dir, key)
    try:
        return released_checkpoint(key, cache_dir=cache_dir)
    except (OSError, ValueError) as error:
        raise CheckpointNotAvailableError(
            f"whisper-at variant {key!r} could not be resolved (neither {checkpoint} on the Hub nor the original "
            f"release's head, converted): {error} To use a checkpoint you converted yourself: "
            f"load_model({key!r}, checkpoints={{{key!r}: DIR}}) or {CHECKPOINTS_ENV}='{{\"{key}\": \"DIR\"}}'."
        ) from error


def _check_source(name: str, download_root: str | os.PathLike | None) -> None:
    """`model_sources.check_model_source`, a missing model raised as [`CheckpointNotAvailableError`]."""
    try:
        check_model_source(name, cache_dir=os.fspath(download_root) if download_root else None, option="name_or_path")
    except ModelSourceNotFoundError as error:
        raise CheckpointNotAvailableError(str(error)) from error


def _local_checkpoint(checkpoint: str, cache_dir: str | None, variant: str | None) -> str:
    """A local dir holding `checkpoint`: itself, or its Hub snapshot (downloaded or from the cache)."""
    if Path(checkpoint).is_dir():
        return checkpoint
    # Hub ids are "name" or "org/name"; anything else that is not a dir is a missing local path
    looks_local = not is_hub_id(checkpoint)
    cause = "no such local directory"
    if not looks_local:
        from huggingface_hub import snapshot_download

        try:
            return snapshot_download(checkpoint, cache_dir=cache_dir)
        except (OSError, ValueError) as error:  # not on the Hub / not cached while offline / not a valid repo id
            cause = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}".rstrip(": ")
    what = f"the checkpoint for whisper-at variant {variant!r} ({checkpoint})" if variant else f"{checkpoint!r}"
    hint = (
        f" Convert the original release with `whisper-at-convert` (see the README) and point the name at the "
        f"output: load_model({variant!r}, checkpoints={{{variant!r}: DIR}}) or "
        f"{CHECKPOINTS_ENV}='{{\"{variant}\": \"DIR\"}}'."
        if variant
        else " Give a transformers checkpoint dir, a Hub id, or an original variant name "
        f"({', '.join(available_models())})."
    )
    raise CheckpointNotAvailableError(f"{what} is not available locally or on the Hub ({cause}).{hint}")


# ----------------------------------------------------------------------------------------------------------------------
# The model object
# ----------------------------------------------------------------------------------------------------------------------
# Original `transcribe` defaults (OpenAI Whisper's), kept so that a migrated call decodes the same way.
_DEFAULT_TEMPERATURE = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
# Original decode options with no transformers equivalent: ignored with a warning when set to a non-default value.
_UNSUPPORTED_OPTIONS = {
    "best_of": None,
    "patience": None,
    "length_penalty": None,
    "prefix": None,
    "prompt": None,
    "suppress_blank": True,
    "prepend_punctuations": None,
    "append_punctuations": None,
}
_TIME_PRECISION = 0.02  # seconds per Whisper timestamp token


class WhisperATModel:
    """What [`load_model`] returns: the original model object's `transcribe`, on a whisper-at-hf pipeline.

    Attributes:
        pipeline: the underlying [`WhisperATPipeline`] (use it directly for batching, chunking, word timestamps).
        model: the [`WhisperForAudioTaggingAndASR`].
        label_names: the checkpoint's [`LabelNames`].
        name_or_path: the checkpoint it was loaded from.
    """

    def __init__(self, pipeline: Any, label_names: LabelNames, name_or_path: str):
        self.pipeline = pipeline
        self.model = pipeline.model
        self.label_names = label_names
        self.name_or_path = name_or_path

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def is_multilingual(self) -> bool:
        return bool(getattr(self.model.generation_config, "is_multilingual", self.model.config.vocab_size >= 51865))

    @property
    def num_labels(self) -> int:
        return self.model.config.num_labels

    def transcribe(
        self,
        audio: str | os.PathLike | np.ndarray | torch.Tensor,
        at_time_res: float = 10,
        language: str | None = None,
        task: str = "transcribe",
        *,
        verbose: bool | None = None,
        temperature: float | Sequence[float] = _DEFAULT_TEMPERATURE,
        compression_ratio_threshold: float | None = 2.4,
        logprob_threshold: float | None = -1.0,
        no_speech_threshold: float | None = 0.6,
        condition_on_previous_text: bool = True,
        initial_prompt: str | None = None,
        word_timestamps: bool = False,
        **decode_options: Any,
    ) -> dict[str, Any]:
        """Transcribes and tags `audio` like the original `model.transcribe`, through `pipeline("whisper-at")`.

        Args:
            audio: a file path, or a 16 kHz mono waveform (`np.ndarray` / `torch.Tensor`) as in the original; also
                anything `whisper_at_hf.audio.load_audio` takes (bytes, `{"array", "sampling_rate"}`).
            at_time_res: tag window in seconds (a positive multiple of 0.4; the heads were trained at 10).
            language: spoken language (`"en"`, `"English"`, ...); detected when `None` (English-only models: `"en"`).
            task: `"transcribe"` or `"translate"`.
            temperature, compression_ratio_threshold, logprob_threshold, no_speech_threshold: passed to Whisper's
                generate (temperature fallback), same names and defaults as the original.
            condition_on_previous_text: -> `condition_on_prev_tokens`.
            word_timestamps: each segment gets `words`: `[{"word", "start", "end", "probability"}]` from
                transformers' cross-attention alignment (`return_timestamps="word"`), `probability` `None`.
            initial_prompt: -> `prompt_ids` (the prompt is not part of `text`).
            decode_options: `beam_size` -> `num_beams` (default 1: greedy, as the original; the ASR pipeline's own
                default would be 5); `sample_len` -> `max_new_tokens`; `suppress_tokens`
                (`"-1"` = the checkpoint's default set, a comma-separated string or a list of ids);
                `max_initial_timestamp` -> `max_initial_timestamp_index`; `without_timestamps` (one segment);
                `fp16` (float16 on CUDA; always float32 on CPU, as in the original); `verbose` prints segments.
                Ignored with a warning: `best_of`, `patience`, `length_penalty` (different formula in
                transformers), `prefix`, `prompt`, `suppress_blank=False`, `prepend_punctuations`,
                `append_punctuations`.

        Returns:
            `{"text", "segments", "language", "at_time_res", "audio_tag", "label_names"}`: `audio_tag` is a
            `(ceil(duration / at_time_res), num_labels)` float32 tensor of logits; window `k` covers
            `[k r, (k + 1) r)` on absolute time from 0. `segments` as the original's (see [`_segments`]).
            `label_names` is `{language: [names]}` from the checkpoint (used by [`parse_at_label`]).
        """
        fp16 = decode_options.pop("fp16", True)
        without_timestamps = decode_options.pop("without_timestamps", False)
        generate_kwargs = self._generate_kwargs(
            language, task, temperature, compression_ratio_threshold, logprob_threshold, no_speech_threshold,
            condition_on_previous_text, initial_prompt, decode_options,
        )  # fmt: skip
        # checked before any audio is decoded
        at_time_res = check_at_time_res(at_time_res, self.model.config)
        rate = self.pipeline.feature_extractor.sampling_rate
        # decoded here (not in the pipeline) to know the duration up front; a bare waveform is 16 kHz as in the original
        loaded = load_audio(audio.detach().cpu().float().numpy() if isinstance(audio, torch.Tensor) else audio, rate, rate)
        if word_timestamps:  # words come nested in Whisper's segments, decoded from the same tokens
            timestamps = {"return_timestamps": "word", "return_word_segments": True}
        else:
            timestamps = {"return_timestamps": not without_timestamps}
        with self._precision(fp16):
            output = self.pipeline({"raw": loaded.array, "sampling_rate": loaded.sampling_rate}, at_time_res=at_time_res,
                                   return_language=True, return_tag_logits=True, generate_kwargs=generate_kwargs,
                                   **timestamps)  # fmt: skip
        segments = self._segments(output, loaded.duration, temperature, word_timestamps, without_timestamps)
        if verbose:
            for segment in segments:
                print(f"[{_timestamp(segment['start'])} --> {_timestamp(segment['end'])}] {segment['text']}")
        return {
            "text": output["text"],
            "segments": segments,
            "language": language_code(output.get("language")),  # the original returns codes ("de")
            "at_time_res": at_time_res,
            "audio_tag": torch.from_numpy(np.ascontiguousarray(output["audio_tag_logits"])),
            "label_names": self.label_names.names_by_language,
        }

    def _segments(
        self,
        output: Mapping[str, Any],
        duration: float,
        temperature: float | Sequence[float],
        word_timestamps: bool,
        without_timestamps: bool,
    ) -> list[dict[str, Any]]:
        """The original's segments from the pipeline's output: `id`, `seek`, `start`, `end`, `text`, `tokens`,
        `temperature`, `avg_logprob`, `compression_ratio`, `no_speech_prob`, where `tokens` are the segment text's
        tokens (re-encoded; no timestamp tokens); `seek` is 0 for audio up to 30 s, else `None` (transformers does not
        report the window); `compression_ratio` is the gzip ratio of the whole text for audio up to 30 s (the
        original's per-window value; one window), else `None`; `temperature` is the one given when a single one was,
        else `None` (the fallback step used is not reported); `avg_logprob` and `no_speech_prob` are `None` (not
        reported by the pipeline); with `word_timestamps`, `words`."""
        text = output["text"]
        if not text.strip():
            return []  # nothing said (e.g. the no-speech check skipped the window): no segments, as the original
        if word_timestamps:
            chunks = output.get("segments")
        else:
            chunks = None if without_timestamps else output.get("chunks")
        chunks = chunks or [{"timestamp": (0.0, duration), "text": text, "words": output.get("chunks") or []}]
        single_window = duration <= self.pipeline.feature_extractor.chunk_length
        single_temperature = float(temperature) if isinstance(temperature, (int, float)) else None
        if single_temperature is None and len(temperature) == 1:
            single_temperature = float(temperature[0])
        segments = []
        for index, chunk in enumerate(chunks):
            start, end = chunk["timestamp"]
            segment = {
                "id": index,
                "seek": 0 if single_window else None,
                "start": float(start or 0.0),
                "end": float(end if end is not None else duration),
                "text": chunk["text"],
                "tokens": self.pipeline.tokenizer.encode(chunk["text"], add_special_tokens=False),
                "temperature": single_temperature,
                "avg_logprob": None,
                "compression_ratio": _compression_ratio(text) if single_window else None,
                "no_speech_prob": None,
            }
            if word_timestamps:
                segment["words"] = [_word(word, duration) for word in chunk["words"]]
            segments.append(segment)
        return segments

    def _generate_kwargs(
        self,
        language,
        task,
        temperature,
        compression_ratio_threshold,
        logprob_threshold,
        no_speech_threshold,
        condition_on_previous_text,
        initial_prompt,
        decode_options: dict[str, Any],
    ) -> dict[str, Any]:
        """Maps the original decode options onto Whisper `generate` kwargs; warns about the ones without one."""
        decode_options = dict(decode_options)
        language = decode_options.pop("language", language)
        task = decode_options.pop("task", task)
        # options' one rule: English / transcribe on an English-only model are dropped, the rest refused
        kwargs: dict[str, Any] = check_language_and_task(language, task, self.is_multilingual, self.name_or_path)
        kwargs["temperature"] = check_temperature(temperature)
        kwargs["compression_ratio_threshold"] = check_optional_number(
            "compression_ratio_threshold", compression_ratio_threshold, 0.0
        )
        kwargs["logprob_threshold"] = check_optional_number("logprob_threshold", logprob_threshold)
        kwargs["no_speech_threshold"] = check_optional_number("no_speech_threshold", no_speech_threshold, 0.0, 1.0)
        kwargs["condition_on_prev_tokens"] = condition_on_previous_text
        if initial_prompt is not None:
            prompt_ids = self.pipeline.tokenizer.get_prompt_ids(initial_prompt.strip(), return_tensors="pt")
            kwargs["prompt_ids"] = prompt_ids.to(self.device)
        # The original decodes greedily unless told a beam size; the ASR pipeline's own default is 5 beams.
        beam_size = decode_options.pop("beam_size", None)
        kwargs["num_beams"] = check_num_beams(beam_size, "beam_size") if beam_size is not None else 1
        sample_len = decode_options.pop("sample_len", None)
        if sample_len is not None:
            kwargs["max_new_tokens"] = check_max_new_tokens(sample_len, self.model.config, "sample_len")
        max_initial_timestamp = check_optional_number(
            "max_initial_timestamp", decode_options.pop("max_initial_timestamp", 1.0), 0.0
        )
        if max_initial_timestamp is not None:
            kwargs["max_initial_timestamp_index"] = int(round(max_initial_timestamp / _TIME_PRECISION))
        suppress = _suppress_tokens(decode_options.pop("suppress_tokens", "-1"), self.model.generation_config)
        if suppress is not None:
            kwargs["suppress_tokens"] = suppress
        for name, default in _UNSUPPORTED_OPTIONS.items():
            value = decode_options.pop(name, default)
            if value != default:
                warnings.warn(f"decode option {name}={value!r} has no transformers equivalent; ignoring it.", stacklevel=3)
        if decode_options:
            raise TypeError(f"unknown decode options: {', '.join(sorted(decode_options))}.")
        return kwargs

    def _precision(self, fp16: bool) -> contextlib.AbstractContextManager:
        """As the original: float16 compute only on CUDA (`fp16=True`), float32 elsewhere; for this call only. The
        shared model's weights are never cast: float16 on float32 weights is autocast, which is per thread."""
        if self.device.type != "cuda":
            return contextlib.nullcontext()
        if fp16 and self.model.dtype == torch.float32:
            return torch.autocast("cuda", dtype=torch.float16)
        if not fp16 and self.model.dtype != torch.float32:
            warnings.warn(
                f"fp16=False, but the model was loaded in {self.model.dtype}; it runs in that dtype. For float32, "
                "load it with load_model(..., dtype=torch.float32) (the default).",
                stacklevel=3,
            )
        return contextlib.nullcontext()


def transcribe(model: WhisperATModel, audio: Any, **kwargs: Any) -> dict[str, Any]:
    """`whisper_at.transcribe(model, audio, ...)`: the same as `model.transcribe(audio, ...)`."""
    return model.transcribe(audio, **kwargs)


def _suppress_tokens(value: Any, generation_config: Any) -> list[int] | None:
    """The original's `suppress_tokens`: "-1" stands for the default set; `None` keeps the checkpoint's."""
    tokens = check_suppress_tokens(value)
    if tokens is None or tokens == [-1]:
        return None
    if -1 in tokens:
        tokens = [token for token in tokens if token >= 0] + list(generation_config.suppress_tokens or [])
    return sorted(set(tokens))


def _word(chunk: Mapping[str, Any], duration: float) -> dict[str, Any]:
    """A word chunk of the pipeline -> the original's word dict (`probability` is not reported: `None`)."""
    start, end = chunk["timestamp"]
    return {
        "word": chunk["text"],
        "start": float(start or 0.0),
        "end": float(end if end is not None else duration),
        "probability": None,
    }


def _compression_ratio(text: str) -> float:
    """gzip compression ratio of a text, as Whisper's decoder reports it."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _timestamp(seconds: float) -> str:
    minutes, seconds = divmod(seconds, 60)
    return f"{int(minutes):02d}:{seconds:06.3f}"


# ----------------------------------------------------------------------------------------------------------------------
# Tags and label names
# ----------------------------------------------------------------------------------------------------------------------
def parse_at_label(
    result: Mapping[str, Any],
    language: str = "follow_asr",
    top_k: int = 5,
    p_threshold: float = -1,
    include_class_list: Sequence[int] | None = None,
    label_names: Any = None,
) -> list[dict[str, Any]]:
    """The original `parse_at_label`: per tag window the top-k `(name, logit)` pairs above `p_threshold`.

    Args:
        result: a `transcribe` result (`language`, `at_time_res`, `audio_tag` and, from this package, `label_names`;
            without `label_names`, as in a result of the original package, the original release's AudioSet names
            are read from the installed `whisper-at` package).
        language: language of the label names; `"follow_asr"` takes `result["language"]`. Languages the checkpoint
            has no names for fall back to English with a warning.
        top_k: at most this many classes per window.
        p_threshold: keep classes whose logit is above this (strictly), as in the original.
        include_class_list: class indices to consider (default all). Applied BEFORE the top-k is taken — unlike the
            original, which took the top-k of all classes and then dropped unlisted ones (losing wanted classes).
        label_names: names to use instead of `result["label_names"]`: a [`LabelNames`], `{language: [names]}`, a
            list of English names, a loaded [`WhisperATModel`], or a checkpoint dir / Hub id.

    Returns:
        `[{"time": {"start": k r, "end": (k + 1) r}, "audio tags": [(name, logit), ...]}, ...]`, one entry per row of
        `audio_tag`, tags by decreasing logit. Times are the window grid, as in the original (not clipped to the
        audio's end).
    """
    _, audio_tag = check_tagging_result(result)
    at_time_res = result["at_time_res"]  # as given (the original's times keep its type)
    top_k = check_int("top_k", top_k)
    p_threshold = check_number("p_threshold", p_threshold, allow_infinite=True)
    if not isinstance(language, str):
        raise ValueError(f'language must be "follow_asr" or a language code such as "en", got {language!r}.')
    names = _label_names(label_names if label_names is not None else result.get("label_names"))
    if language == "follow_asr":
        language = result.get("language") or "en"
    label_list = names.get(language)
    audio_tag = torch.as_tensor(audio_tag).float().numpy()
    num_labels = audio_tag.shape[-1]
    if len(label_list) != num_labels:
        raise ValueError(f"{len(label_list)} label names for {num_labels} tag classes in result['audio_tag'].")
    candidates = None
    if include_class_list is not None:
        indices = check_class_indices("include_class_list", include_class_list, num_labels)
        candidates = candidate_ids(num_labels, include=indices)
    parsed = []
    for window, ids in enumerate(top_tags(audio_tag, candidates, top_k, p_threshold, strictly_above=True)):
        tags = [(label_list[i], float(audio_tag[window, i])) for i in ids]
        # the original's grid: not clipped to the audio's end
        parsed.append({"time": {"start": window * at_time_res, "end": (window + 1) * at_time_res}, "audio tags": tags})
    return parsed


def print_label_name(language: str = "en", label_names: Any = None) -> None:
    """Prints `index: i : name` for every class, in `language`.

    `label_names`: as in [`parse_at_label`]; default the original release's AudioSet names, read from the installed
    `whisper-at` package (the names every converted original checkpoint carries).
    """
    names = _label_names(label_names).get(language)
    for index, name in enumerate(names):
        print(f"index: {index:d} : {name}")


def print_support_language(label_names: Any = None) -> None:
    """Prints `language code: xx : language` for every language the label names exist in (see `print_label_name`)."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    for code in _label_names(label_names).languages:
        print(f"language code: {code} : {LANGUAGES.get(code, code)}")


def _label_names(source: Any) -> LabelNames:
    if source is None:
        return read_original_label_names()
    if isinstance(source, LabelNames):
        return source
    if isinstance(source, WhisperATModel):
        return source.label_names
    if isinstance(source, (str, os.PathLike)):
        return load_label_names(os.fspath(source))
    if isinstance(source, Mapping):
        return LabelNames(source)
    if isinstance(source, Sequence):
        return LabelNames({"en": list(source)})
    raise TypeError(f"label names must be LabelNames, a dict, a list, a model or a checkpoint, got {type(source)}.")


__all__ = [
    "ALIASES",
    "CHECKPOINTS",
    "CHECKPOINTS_ENV",
    "CheckpointNotAvailableError",
    "HUB_NAMESPACE",
    "WhisperATModel",
    "available_models",
    "checkpoint_for",
    "load_model",
    "parse_at_label",
    "print_label_name",
    "print_support_language",
    "transcribe",
]
