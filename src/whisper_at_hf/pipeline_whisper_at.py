"""`pipeline("whisper-at")`: Whisper's transcript plus AudioSet tags on an absolute time grid, from one model.

Registered as task `"whisper-at"` when `whisper_at_hf` is imported, and written beside every saved
[`WhisperForAudioTaggingAndASR`] checkpoint (`custom_pipelines` in its config + this module and its relative imports),
so `pipeline("whisper-at-remote-code", model=DIR, trust_remote_code=True)` works where the package is not installed
(the copy's own task name: `remote_code.REMOTE_PIPELINE_TASK`). For that reason this module only imports its siblings
relatively.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
# What `audio.py` decodes and resamples with, imported here too because, for a local folder, transformers'
# `check_imports` reads only the module `pipeline()` names: a missing one then fails at load with `pip install ...`.
import soundfile  # noqa: F401
import soxr  # noqa: F401
import torch
from transformers.pipelines.automatic_speech_recognition import AutomaticSpeechRecognitionPipeline, chunk_iter
from transformers.pipelines.base import pad_collate_fn
from transformers.pipelines.pt_utils import PipelineChunkIterator, PipelineIterator, PipelinePackIterator
from transformers.utils import logging

from .audio import Audio, AudioDecodeError, StreamedAudio, open_audio
from .encoder_pass_cache import EncoderPassCache
from .generate_output import (
    detect_language,
    language_code,
    language_name,
    nest_words,
    split_generated,
    times_for_language_token,
)
from .head_only import load_model_processor
from .labels import model_label_names
from .long_form_features import LongFormFeatures
from .options import check_generate_kwargs, check_not_a_sample_list, check_pipeline_options
from .pipeline_asr_whisper_at import whisper_processing_type
from .tags import (
    EVENT_HOP_SECONDS,
    EVENT_SMOOTHING_POINTS,
    EVENT_WINDOW_SECONDS,
    candidate_ids,
    events_from_curve,
    format_window_tags,
    smooth_curve,
    windows_for_duration,
)
from .timeline import CallTimelines, PooledSpan, pass_features, pass_spans, tag_passes

logger = logging.get_logger(f"transformers.{__name__}")  # under transformers: its verbosity rules ours

# Long-form: aligned 30 s tag passes kept for Whisper's decoding to reuse (each: its features and (1500, d_model)).
_MAX_HELD_WINDOWS = 16
# `__call__` arguments that the base pipeline takes itself (not passed to `_sanitize_parameters`).
_CALL_ONLY_PARAMS = ("num_workers", "batch_size")
# Our options that reach `postprocess`.
_EVENT_OPTIONS = ("event_threshold", "event_offset_threshold", "event_min_duration", "event_min_gap")
_POSTPROCESS_OPTIONS = ("at_time_res", "top_k", "tag_threshold", "include_labels", "exclude_labels",
                        "return_tag_logits", "label_language", "return_word_segments", "return_events", *_EVENT_OPTIONS)


class WhisperATPipeline(AutomaticSpeechRecognitionPipeline):
    """Speech recognition with Whisper and audio tagging with the Whisper-AT head, from the same encoder passes.

    Inputs are those of [`AutomaticSpeechRecognitionPipeline`] (a path, the bytes of a file, a waveform with
    `sampling_rate=`, a `{"array" or "raw", "sampling_rate"}` dict, or a list of these); stereo is down-mixed and
    other rates are resampled. Output per input:

        {"text": str, "language": str | None, "chunks": [...] (with return_timestamps),
         "audio_tags": [{"timestamp": (start_s, end_s), "tags": [{"label": str, "score": float}, ...]}, ...],
         "audio_tag_logits": np.ndarray (num_windows, num_labels) (with return_tag_logits=True),
         "segments": [{"text", "timestamp", "words": [word chunks]}, ...] (with return_timestamps="word" and
             return_word_segments=True: Whisper's segments, each with its words, from the same tokens),
         "events": [{"label", "label_id", "start", "end", "score"}, ...] (with return_events=True)}

    `text`, `chunks` and every generation argument (`generate_kwargs`, `language`, `task`, `return_timestamps`,
    `return_language`, `chunk_length_s`, `stride_length_s`) behave exactly as in the ASR pipeline. `language` is
    the language Whisper was told or detected (`"en"` for English-only checkpoints).

    Tag parameters: `at_time_res` (seconds, a multiple of 0.4; default `config.at_time_res`) sets the windows,
    `[k r, (k + 1) r)` on absolute time from 0 with the last one clipped to the input's end; `top_k` (5) and
    `tag_threshold` (a probability) filter each window's tags after `include_labels`/`exclude_labels` restricted the
    classes; `score` is the sigmoid probability; `label_language` is `"follow_asr"` (default), a code such as
    `"de"`, or `"en"` (English with a warning when the checkpoint lacks that language).

    Event parameters (with `return_events=True`; see `tags.py` for the design and defaults): `event_threshold`
    (onset probability), `event_offset_threshold`, `event_min_duration` and `event_min_gap` (seconds); the classes
    are those `include_labels`/`exclude_labels` leave. The head also runs on windows sliding along the pooled frames
    of the same passes (no extra encoder pass), so events run across 30 s pass and chunk boundaries.

    Encoder passes:
    - Up to 30 s: one encoder pass feeds both the decoder (language detection included) and the head. With
      `return_timestamps`, Whisper may seek to a timestamp inside the window and encode again from there, as it
      does in the ASR pipeline; those passes are Whisper's own.
    - `chunk_length_s` chunking: each chunk's pass feeds its decoding and, when chunk starts fall on the 0.4 s
      pooled grid (the default `chunk_length_s=30` stride does: chunks start every 20 s), the absolute tag timeline
      is assembled from the chunks' pooled states, so no extra pass runs. Chunk starts off the grid cannot be mapped
      onto absolute windows; then one extra tag-only pass per aligned 30 s window is queued after the chunks.
    - Longer than 30 s without `chunk_length_s`: Whisper's own sequential long-form decoding moves its window by
      decoded timestamps, off the pooled grid, so tags get one encoder pass per aligned 30 s window (batched
      `batch_size` windows at a time), run before decoding; Whisper's passes on exactly such a window (its first,
      and seeks that land on a 30 s boundary) are answered from them (up to `_MAX_HELD_WINDOWS` held windows).
      Memory is flat in the input's length: a long file is read block by block ([`StreamedAudio`]; one only
      ffmpeg decodes is decoded to a temporary file first) and its features are computed per 30 s slice as
      Whisper's loop and the tag passes ask ([`LongFormFeatures`], equal to the whole input's features, global
      floor included).

    Bad inputs: a single bad input raises [`AudioDecodeError`] (a `ValueError`); in a list, the bad input's entry is
    `{"error": message, "source": name}` and the others are processed as usual.
    """

    _non_generation_params = ("top_k",)
    # `pipeline()` tries the checkpoint's own processor and passes None when it has none (transformers' soft loading;
    # pinned in tests/test_upstream_pins.py); `__init__` then takes the base Whisper's (head-only checkpoints).
    _load_tokenizer = None
    _load_feature_extractor = None

    def __init__(self, *args: Any, **kwargs: Any):
        if kwargs.get("tokenizer") is None or kwargs.get("feature_extractor") is None:
            processor = load_model_processor(kwargs["model"] if "model" in kwargs else args[0])
            kwargs["tokenizer"] = kwargs.get("tokenizer") or processor.tokenizer
            kwargs["feature_extractor"] = kwargs.get("feature_extractor") or processor.feature_extractor
        super().__init__(*args, **kwargs)
        if not hasattr(self.model, "encode") or not hasattr(self.model, "tag_pooled"):
            raise ValueError(f"{type(self.model).__name__} has no audio-tagging head; load a Whisper-AT checkpoint.")
        self._label_names = None  # read once, on first use (the same for every call)

    # ----- parameters -----------------------------------------------------------------------------------------------
    def _sanitize_parameters(
        self,
        sampling_rate: int | None = None,
        at_time_res: float | None = None,
        top_k: int | None = None,
        tag_threshold: float | None = None,
        include_labels: Sequence[str] | None = None,
        exclude_labels: Sequence[str] | None = None,
        return_tag_logits: bool | None = None,
        label_language: str | None = None,
        return_word_segments: bool | None = None,
        return_events: bool | None = None,
        event_threshold: float | None = None,
        event_offset_threshold: float | None = None,
        event_min_duration: float | None = None,
        event_min_gap: float | None = None,
        **kwargs: Any,
    ):
        # Every option is checked here, before any audio is decoded or the model runs.
        generation = {**check_generate_kwargs(kwargs.get("generate_kwargs")), **kwargs}
        multilingual = getattr(self.model.generation_config, "is_multilingual", True)
        checked = check_pipeline_options(
            self.model.config,
            self._all_label_names() if include_labels is not None or exclude_labels is not None else None,
            multilingual=multilingual,
            model_name=self.model.name_or_path or type(self.model).__name__,
            preferred_labels=self._preferred_label_names(label_language, generation.get("language")),
            sampling_rate=sampling_rate,
            at_time_res=at_time_res,
            top_k=top_k,
            tag_threshold=tag_threshold,
            include_labels=include_labels,
            exclude_labels=exclude_labels,
            label_language=label_language,
            return_events=return_events,
            event_threshold=event_threshold,
            event_offset_threshold=event_offset_threshold,
            event_min_duration=event_min_duration,
            event_min_gap=event_min_gap,
            chunk_length_s=kwargs.get("chunk_length_s"),
            stride_length_s=kwargs.get("stride_length_s"),
            return_timestamps=kwargs.get("return_timestamps"),
            num_beams=generation.get("num_beams"),
            max_new_tokens=generation.get("max_new_tokens"),
            language=generation.get("language"),
            task=generation.get("task"),
        )
        if return_word_segments and kwargs.get("return_timestamps") != "word":
            raise ValueError("return_word_segments=True needs return_timestamps='word'.")
        if isinstance(at_time_res, np.generic):  # a numpy scalar as the Python number it holds (int stays int)
            at_time_res = at_time_res.item()
        for name in ("chunk_length_s", "stride_length_s"):  # canonical: the chunking tests for Python numbers
            if kwargs.get(name) is not None:
                kwargs[name] = checked[name]
        preprocess_params, forward_params, postprocess_params = super()._sanitize_parameters(**kwargs)
        if not multilingual:  # English / "transcribe": what an English-only model does anyway (options' one rule)
            forward_params.pop("language", None)
            forward_params.pop("task", None)
        if sampling_rate is not None:
            preprocess_params["sampling_rate"] = checked["sampling_rate"]
        if at_time_res is not None:
            preprocess_params["at_time_res"] = forward_params["at_time_res"] = at_time_res
        # as given: `at_time_res=10` and `10.0` keep their JSON (window bounds are multiples of it)
        values = {**checked, "at_time_res": at_time_res, "return_tag_logits": return_tag_logits,
                  "return_word_segments": return_word_segments or None}
        postprocess_params.update({name: values[name] for name in _POSTPROCESS_OPTIONS if values.get(name) is not None})
        # The language in `text` is needed to pick label names (and to report it).
        forward_params.setdefault("return_language", postprocess_params.get("return_language"))
        # A fresh timeline state per call: calls sharing this pipeline (threads) never share one.
        forward_params["timelines"] = self._timelines(at_time_res, bool(return_events))
        return preprocess_params, forward_params, postprocess_params

    def _timelines(self, at_time_res: float | None, events: bool) -> CallTimelines:
        """A call's timeline state: `at_time_res` windows and, with `events`, the sliding event windows."""
        config = self.model.config
        window = config.at_window_frames(at_time_res)
        if not events:
            return CallTimelines(window)
        return CallTimelines(window, config.at_window_frames(EVENT_WINDOW_SECONDS), self._event_hop_frames)

    @property
    def _event_hop_frames(self) -> int:
        return max(round(EVENT_HOP_SECONDS / self.model.config.at_pooled_frame_seconds), 1)

    # ----- calling --------------------------------------------------------------------------------------------------
    def __call__(self, inputs: Any, **kwargs: Any):
        """Transcribes and tags `inputs` (one input, or a list of them). See the class docstring."""
        check_not_a_sample_list(inputs)
        check_pipeline_options(batch_size=kwargs.get("batch_size"))
        if not isinstance(inputs, list):
            return super().__call__(inputs, **kwargs)
        # A list: decode inputs lazily, one at a time, and let a bad one become an error entry instead of an exception.
        # The base pipeline peeks at a generator's first item before it checks the options: check them first.
        self._sanitize_parameters(**{key: value for key, value in kwargs.items() if key not in _CALL_ONLY_PARAMS})
        sampling_rate = kwargs.get("sampling_rate")
        errors: dict[int, AudioDecodeError] = {}

        def decoded() -> Iterable[Audio]:
            for index, item in enumerate(inputs):
                try:
                    yield self._load(item, sampling_rate)
                except AudioDecodeError as error:
                    logger.warning(f"skipping input {index}: {error}")
                    errors[index] = error

        results = list(super().__call__(decoded(), **kwargs))
        merged, good = [], iter(results)
        for index in range(len(inputs)):
            error = errors.get(index)
            merged.append({"error": str(error), "source": error.source} if error else next(good))
        return merged

    def _load(self, inputs: Any, sampling_rate: int | None) -> Audio | StreamedAudio:
        # As in the ASR pipeline, a bare array is taken to be at the feature extractor's rate unless told otherwise.
        # Long files are opened for block reads (`StreamedAudio`), not decoded whole.
        target = self.feature_extractor.sampling_rate
        return open_audio(inputs, target, input_sampling_rate=target if sampling_rate is None else sampling_rate)

    # ----- preprocess -----------------------------------------------------------------------------------------------
    def preprocess(self, inputs, chunk_length_s=0, stride_length_s=None, sampling_rate=None, at_time_res=None):
        """Yields 30 s passes (or one long-form item) with what `_forward` needs to place their tags in time."""
        audio = self._load(inputs, sampling_rate)
        rate = audio.sampling_rate
        frame_samples = int(round(self.model.config.at_pooled_frame_seconds * rate))
        total_frames = math.ceil(audio.num_samples / frame_samples)
        common = {"audio_seconds": audio.duration, "source": audio.source, "timeline_frames": total_frames}

        if chunk_length_s:
            yield from self._preprocess_chunks(audio.array, chunk_length_s, stride_length_s, frame_samples, common)
            return
        if audio.num_samples > self.feature_extractor.n_samples:
            # Long-form: features computed per window as Whisper's loop and the tag passes slice them (flat memory).
            features = LongFormFeatures(self.feature_extractor, audio, self.dtype)
            mask = torch.ones((1, features.shape[-1]), dtype=torch.int32)
            processed = {"input_features": features, "attention_mask": mask}
            span = None  # tagged in `_forward` by extra aligned passes
        else:
            processed = self._features(audio.array)
            span = PooledSpan(0, 0, total_frames, True)
        yield {"is_last": True, **processed, "decode": True, "span": span, **common}

    def _preprocess_chunks(self, waveform, chunk_length_s, stride_length_s, frame_samples, common):
        # The ASR pipeline's chunks (its `chunk_iter`, so the transcript is the same), each placed on the timeline.
        # upstream-coupled: the chunk sizes as the ASR pipeline's `preprocess` rounds them (Pin: test_asr_chunking).
        rate = self.feature_extractor.sampling_rate
        if stride_length_s is None:
            stride_length_s = chunk_length_s / 6
        if isinstance(stride_length_s, (int, float)):
            stride_length_s = [stride_length_s, stride_length_s]
        align_to = self._align_to  # upstream-coupled (Pin: test_asr_pipeline_align_to)
        chunk_len = int(round(chunk_length_s * rate / align_to) * align_to)
        stride_left = int(round(stride_length_s[0] * rate / align_to) * align_to)
        stride_right = int(round(stride_length_s[1] * rate / align_to) * align_to)
        if chunk_len < stride_left + stride_right:
            raise ValueError("Chunk length must be superior to stride length")
        if chunk_len > self.feature_extractor.n_samples:
            raise ValueError(f"chunk_length_s={chunk_length_s} is longer than Whisper's 30 s window.")
        step = chunk_len - stride_left - stride_right
        on_grid = step % frame_samples == 0

        items = self._chunk_items(waveform, chunk_len, stride_left, stride_right, step, frame_samples, on_grid)
        # Built one at a time (memory flat in the number of chunks); one item of lookahead tells the last one.
        previous = next(items)
        for item in items:
            yield {"is_last": False, **previous, **common}
            previous = item
        yield {"is_last": True, **previous, **common}

    def _chunk_items(self, waveform, chunk_len, stride_left, stride_right, step, frame_samples, on_grid):
        """The chunks' items (features, stride, span), lazily; off the grid, then the aligned tag-only passes."""
        total_samples = waveform.shape[0]
        total_frames = math.ceil(total_samples / frame_samples)
        chunks = chunk_iter(waveform, self.feature_extractor, chunk_len, stride_left, stride_right, self.dtype)
        for index, chunk in enumerate(chunks):  # chunk k starts at k * step (only a last, too short one is dropped)
            start, is_last = index * step, chunk.pop("is_last")
            length, left, right = chunk["stride"]
            span = None
            if on_grid:
                own_start = 0 if start == 0 else (start + left) // frame_samples
                own_stop = total_frames if is_last else (start + length - right) // frame_samples
                span = PooledSpan(start // frame_samples, own_start, own_stop, is_last)
            yield {**chunk, "decode": True, "span": span}
        if not on_grid:
            logger.info("chunk starts are off the 0.4 s tag grid: tagging with extra aligned 30 s passes.")
            window_samples = self.feature_extractor.n_samples
            for start in range(0, total_samples, window_samples):
                piece = waveform[start : start + window_samples]
                final = start + window_samples >= total_samples
                stop = total_frames if final else (start + window_samples) // frame_samples
                span = PooledSpan(start // frame_samples, start // frame_samples, stop, final)
                yield {"stride": (piece.shape[0], 0, 0), **self._features(piece), "decode": False, "span": span}

    def _features(self, waveform: np.ndarray, **kwargs: Any) -> dict:
        processed = self.feature_extractor(
            waveform,
            sampling_rate=self.feature_extractor.sampling_rate,
            return_tensors="pt",
            return_attention_mask=True,
            **kwargs,
        )
        if self.dtype is not None:
            processed = processed.to(dtype=self.dtype)
        return dict(processed)

    # ----- forward --------------------------------------------------------------------------------------------------
    def _forward(
        self,
        model_inputs,
        return_timestamps=False,
        return_language=None,
        at_time_res=None,
        timelines: CallTimelines | None = None,
        tag_batch_size: int = 1,
        **generate_kwargs,
    ):
        is_last = model_inputs.pop("is_last")
        batched = isinstance(is_last, list)
        items = _take_per_item(model_inputs, _PER_ITEM_FIELDS, batched, len(is_last) if batched else 1)
        features = model_inputs.pop("input_features")
        attention_mask = model_inputs.pop("attention_mask", None)
        timelines = timelines if timelines is not None else self._timelines(at_time_res, events=False)
        return_timestamps = return_timestamps or getattr(self.model.generation_config, "return_timestamps", False)
        generate_kwargs = self._generation_arguments(generate_kwargs, return_timestamps, return_language)
        rows = [index for index, decode in enumerate(items["decode"]) if decode]

        if features.shape[-1] <= self.feature_extractor.nb_max_frames:
            tags, events, encoded, generated = self._tag_and_generate_one_pass(
                features, attention_mask, items["span"], rows, timelines, at_time_res, generate_kwargs
            )
        else:
            tags, events, generated = self._tag_and_generate_long(
                features, attention_mask, items["timeline_frames"], timelines, at_time_res, tag_batch_size,
                generate_kwargs,
            )
            encoded = None
        out = self._read_generated(
            generated, rows, generate_kwargs, return_timestamps == "word", encoded, features.shape[0]
        )

        result = {"is_last": is_last, **out}
        if any(stride is not None for stride in items["stride"]):
            result["stride"] = items["stride"]
        result.update(audio_tag_logits=tags, audio_event_logits=events, decode=items["decode"],
                      audio_seconds=items["audio_seconds"], source=items["source"])
        if not batched:  # one item: tensors as `(1, ...)`, as the pack iterator makes batched items look
            result = {
                key: (value[0][None] if isinstance(value[0], torch.Tensor) else value[0]) if key != "is_last" else value
                for key, value in result.items()
            }
        return result

    def _generation_arguments(self, generate_kwargs: dict, return_timestamps: Any, return_language: Any) -> dict:
        """`generate` arguments for the call: timestamps, the pipeline's defaults, and segments when the language
        must be read from the full sequences."""
        if return_timestamps:
            generate_kwargs["return_timestamps"] = True
            if return_timestamps == "word":
                generate_kwargs["return_token_timestamps"] = True
                generate_kwargs["return_segments"] = True
        # upstream-coupled: the pipeline's generation defaults, as the ASR pipeline applies them
        # (Pin: test_pipeline_prepare_generate_kwargs_adds_the_defaults)
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
        if return_language or (self._multilingual(generate_kwargs) and generate_kwargs.get("language") is None):
            generate_kwargs["return_segments"] = True  # the full sequences hold the language token
        return generate_kwargs

    def _multilingual(self, generate_kwargs: dict) -> bool:
        generation_config = generate_kwargs.get("generation_config", self.model.generation_config)
        return getattr(generation_config, "is_multilingual", False)

    def _tag_and_generate_one_pass(self, features, attention_mask, spans, rows, timelines, at_time_res, kwargs):
        """Up to 30 s: one encoder pass per item feeds the head and the decoder. `generate` runs on the features (so
        Whisper's timestamp seeks, temperature fallback and no-speech checks work as in the ASR pipeline) while its
        encoder calls on these same features are answered from this pass."""
        encoded = self.model.encode(features)
        tags, events = tag_passes(
            self.model.tag_pooled, encoded.pooled_hidden_states, spans, timelines, at_time_res,
            self._event_seconds(timelines), self.model.config.num_labels,
        )
        generated = None
        if rows:
            select = rows if len(rows) < features.shape[0] else slice(None)
            generated = self.model.generate(
                input_features=features[select],
                attention_mask=None if attention_mask is None else attention_mask[select],
                encoder_pass_cache=EncoderPassCache(features, encoded),
                **kwargs,
            )
        return tags, events, encoded, generated

    def _tag_and_generate_long(self, features, attention_mask, timeline_frames, timelines, at_time_res, group, kwargs):
        """Longer than 30 s: tag passes first, kept (up to a bound) with the windows they ran on: Whisper's first
        window (seek 0) and every seek that lands on a 30 s boundary (common after music or silence) are answered
        from them."""
        tags, events, held = self._tag_long(features, timeline_frames, timelines, at_time_res, group)
        # Whisper's sequential long-form decoding moves by its timestamps, so it always predicts them (as the
        # original does); the text is the same, and `chunks` are returned only when asked for.
        kwargs = {**kwargs, "return_timestamps": True}
        generated = self.model.generate(
            input_features=features, attention_mask=attention_mask, encoder_pass_cache=held, **kwargs
        )
        return tags, events, generated

    def _read_generated(self, generated, rows, generate_kwargs, word_timestamps, encoded, batch_size) -> dict:
        """Per batch item its `tokens`, `token_timestamps`, `lang_id` and `language` from `generate`'s output."""
        out = {key: [None] * batch_size for key in ("tokens", "token_timestamps", "lang_id", "language")}
        if generated is None:
            return out
        generation_config = self.model.generation_config
        split_generated(generated, rows, generate_kwargs.get("language"), word_timestamps, generation_config, out)
        undetected = [row for row in rows if out["language"][row] is None]
        if undetected and encoded is not None and self._multilingual(generate_kwargs):
            # Whisper detected a language but returned no segment to read it from (no-speech skip): ask again,
            # one decoder step on the same encoder pass (the original reports the language here too).
            detect_language(self.model, encoded.last_hidden_state[undetected], undetected, out)
        return out

    # ----- tags -----------------------------------------------------------------------------------------------------
    @staticmethod
    def _event_seconds(timelines: CallTimelines) -> float | None:
        return EVENT_WINDOW_SECONDS if timelines.shape[1] else None

    def _tag_long(self, features, timeline_frames: list[int], timelines: CallTimelines, at_time_res, group: int):
        """Tags (and event logits) for long-form items by extra passes over aligned 30 s windows of their features, at
        least `group` passes per encoder call (Whisper's own long-form passes move by decoded timestamps, off the
        pooled grid).

        Returns `(tag logits per item, event logits per item or None, cache)`: an [`EncoderPassCache`] of the passes
        `generate` may reuse — every item's first window (also Whisper's first) and, up to `_MAX_HELD_WINDOWS` in all,
        the following ones (memory stays bounded for hours of audio)."""
        segment_frames = self.feature_extractor.nb_max_frames
        per_pass = self.model.config.at_pooled_frames_per_window
        passes = [(index, span) for index, total in enumerate(timeline_frames) for span in pass_spans(total, per_pass)]
        inputs = [timelines.new_input() for _ in timeline_frames]
        tags, events = [[] for _ in timeline_frames], [[] for _ in timeline_frames]
        held_windows, held_states = [], []
        group = max(group or 1, features.shape[0])
        for begin in range(0, len(passes), group):
            chunk = passes[begin : begin + group]
            segments = [pass_features(_item(features, index), span, per_pass, segment_frames)[0] for index, span in chunk]
            encoded = self.model.encode(torch.stack(segments))
            chunk_tags, chunk_events = tag_passes(
                self.model.tag_pooled, encoded.pooled_hidden_states, [span for _, span in chunk],
                [inputs[index] for index, _ in chunk], at_time_res, self._event_seconds(timelines),
                self.model.config.num_labels,
            )
            for row, (index, span) in enumerate(chunk):
                tags[index].append(chunk_tags[row])
                events[index].append(chunk_events[row])
                if span.offset == 0 or len(held_windows) < _MAX_HELD_WINDOWS:
                    held_windows.append(segments[row])
                    # a copy: a view would keep the whole group's states alive (up to `_MAX_HELD_WINDOWS` groups)
                    held_states.append(encoded.last_hidden_state[row].clone())
        held = EncoderPassCache(torch.stack(held_windows), (torch.stack(held_states),))
        events = [torch.cat(pieces) if pieces[0] is not None else None for pieces in events]
        return [torch.cat(pieces) for pieces in tags], events, held

    # ----- postprocess ----------------------------------------------------------------------------------------------
    def postprocess(
        self,
        model_outputs,
        decoder_kwargs=None,
        return_timestamps=None,
        return_language=None,
        at_time_res=None,
        top_k=5,
        tag_threshold=None,
        include_labels=None,
        exclude_labels=None,
        return_tag_logits=False,
        label_language="follow_asr",
        return_word_segments=False,
        return_events=False,
        **event_options: float,
    ):
        logits = [output.pop("audio_tag_logits") for output in model_outputs]
        event_logits = [output.pop("audio_event_logits", None) for output in model_outputs]
        decode = [output.pop("decode") for output in model_outputs]
        languages = [output.pop("language") for output in model_outputs]
        seconds = model_outputs[0].pop("audio_seconds")
        result = self._text(model_outputs, decode, return_timestamps, return_language, return_word_segments)
        language = next((code for code, wanted in zip(languages, decode) if wanted and code), None)

        tag_logits = torch.cat([item[0] for item in logits if item is not None]).float()
        resolution = at_time_res if at_time_res is not None else self.model.config.at_time_res
        tag_logits = tag_logits[: windows_for_duration(seconds, resolution)]
        names = self._names(language if label_language == "follow_asr" else label_language)
        ordered = {"text": result.pop("text"), "language": language_name(language), **result}
        candidates = candidate_ids(
            tag_logits.shape[-1], include_labels, exclude_labels, self._label_names.names_by_language
        )
        probs = torch.sigmoid(tag_logits).numpy()
        ordered["audio_tags"] = format_window_tags(probs, names, resolution, seconds, top_k, tag_threshold, candidates)
        if return_tag_logits:
            ordered["audio_tag_logits"] = tag_logits.numpy()
        if return_events:
            ordered["events"] = self._events(_probabilities(event_logits), seconds, names, candidates, event_options)
        return ordered

    def _text(self, model_outputs, decode, return_timestamps, return_language, return_word_segments) -> dict:
        """The ASR pipeline's postprocess of the decoded items (`text`, `chunks`, ...), plus `segments` with words."""
        for output in model_outputs:
            output.pop("audio_seconds", None)
            output.pop("source", None)
            if output.get("lang_id") is None or not return_language:
                output.pop("lang_id", None)
            if output.get("token_timestamps", 0) is None:
                output.pop("token_timestamps")
            elif "token_timestamps" in output and "lang_id" in output:
                output["token_timestamps"] = times_for_language_token(output["token_timestamps"])
        text_outputs = [output for output, wanted in zip(model_outputs, decode) if wanted]
        segments = None
        if return_word_segments and return_timestamps == "word":
            # The same tokens decoded a second time at segment level (the ASR postprocess consumes its inputs: copies).
            copies = [{key: value for key, value in output.items() if key != "token_timestamps"} for output in text_outputs]
            segments = super().postprocess(copies, return_timestamps=True, return_language=return_language)["chunks"]
        result = super().postprocess(text_outputs, return_timestamps=return_timestamps, return_language=return_language)
        if segments is not None:
            result["segments"] = nest_words(segments, result.get("chunks", []))
        return result

    def _events(self, curve: np.ndarray, seconds: float, names: list[str], candidates, options: dict) -> list[dict]:
        """`(num_points, C)` event probabilities (one point per event hop, from time 0) -> `result["events"]`."""
        hop_seconds = self._event_hop_frames * self.model.config.at_pooled_frame_seconds
        return events_from_curve(
            smooth_curve(curve, EVENT_SMOOTHING_POINTS),
            candidates,
            hop_seconds,
            duration=seconds,
            names=names,
            threshold=options.get("event_threshold"),
            offset_threshold=options.get("event_offset_threshold"),
            min_duration=options.get("event_min_duration"),
            min_gap=options.get("event_min_gap"),
        )

    def _names(self, language: str | None) -> list[str]:
        if getattr(self, "_label_names", None) is None:
            self._label_names = model_label_names(self.model)
        return self._label_names.get(language or "en")

    def _preferred_label_names(self, label_language: str | None, language: Any) -> list[str]:
        """English names and those of the label language (or the spoken language asked for): a misspelled label is
        matched against these first, not against a Welsh name that happens to be closer."""
        wanted = label_language if label_language not in (None, "follow_asr") else language
        self._names("en")
        by_language = self._label_names.names_by_language
        code = language_code(wanted) if isinstance(wanted, str) else None
        return [*by_language["en"], *by_language.get(code, [])] if code != "en" else list(by_language["en"])

    def _all_label_names(self) -> set[str]:
        """Every class name of the checkpoint, in every language it has names in (what include/exclude accept)."""
        self._names("en")
        return {name for names in self._label_names.names_by_language.values() for name in names}

    # ----- upstream-coupled (transformers' ASR pipeline); each piece is pinned by tests/test_upstream_pins.py -------
    # Whisper-AT is Whisper: always take the ASR pipeline's Whisper path, from the start (init-time kwargs included).
    # The one way both pipelines do it, with its pins: `pipeline_asr_whisper_at.whisper_processing_type`.
    type = whisper_processing_type

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        # Pin: test_chunk_pipeline_iterator_building_blocks.
        # As ChunkPipeline's, with a collate that pads log-mel features along time (inputs of several lengths
        # batch together; Whisper reads each one's length from the attention mask).
        num_workers = min(num_workers, 1)
        forward_params = {**forward_params, "tag_batch_size": batch_size}  # long-form tag passes per encoder call
        dataset = PipelineChunkIterator(inputs, self.preprocess, preprocess_params)
        collate_fn = _first_item if batch_size == 1 else _pad_features_collate(self.tokenizer, self.feature_extractor)
        dataloader = torch.utils.data.DataLoader(
            dataset, num_workers=num_workers, batch_size=batch_size, collate_fn=collate_fn
        )
        model_iterator = PipelinePackIterator(dataloader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)


_PER_ITEM_FIELDS = ("decode", "span", "stride", "audio_seconds", "source", "timeline_frames")


def _take_per_item(model_inputs: dict, keys: Sequence[str], batched: bool, items: int) -> dict[str, list]:
    """Pops `keys` from a (collated) model input: per key one entry per batch item (`None`s where it is missing)."""
    taken = {}
    for key in keys:
        if key not in model_inputs:
            taken[key] = [None] * items
            continue
        value = model_inputs.pop(key)
        taken[key] = value if batched else [value]
    return taken


def _item(features: torch.Tensor | LongFormFeatures, index: int) -> torch.Tensor | LongFormFeatures:
    """Batch item `index` as `(1, mel, frames)` (a [`LongFormFeatures`] holds one item)."""
    return features if isinstance(features, LongFormFeatures) else features[index : index + 1]


def _probabilities(logits: list[torch.Tensor | None]) -> np.ndarray:
    """Per-item event logits `(1, n_i, C)` (`None` for items without) -> sigmoid probabilities `(sum n_i, C)`, in
    place in the one buffer (2 h of audio has a 38 MB curve: no second and third copy of it)."""
    present = [item[0] for item in logits if item is not None]
    curve = present[0] if len(present) == 1 else torch.cat(present)
    return curve.float().sigmoid_().numpy()


def _first_item(items):
    return items[0]


def _pad_features_collate(tokenizer, feature_extractor):
    """transformers' `pad_collate_fn`, after padding `input_features` `(1, mel, frames)` to the longest in time."""
    inner = pad_collate_fn(tokenizer, feature_extractor)

    def collate(items):
        for item in items:  # long-form items batched with others: their features whole (memory linear in length)
            if isinstance(item["input_features"], LongFormFeatures):
                item["input_features"] = item["input_features"].materialize()
        longest = max(item["input_features"].shape[-1] for item in items)
        for item in items:
            features = item["input_features"]
            if features.shape[-1] < longest:
                item["input_features"] = torch.nn.functional.pad(features, (0, longest - features.shape[-1]))
                if item.get("attention_mask") is not None:
                    mask = item["attention_mask"]
                    item["attention_mask"] = torch.nn.functional.pad(mask, (0, longest - mask.shape[-1]))
        return inner(items)

    return collate


__all__ = ["WhisperATPipeline"]
