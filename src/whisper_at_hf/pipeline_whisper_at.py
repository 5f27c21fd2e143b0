"""`pipeline("whisper-at")`: Whisper's transcript plus AudioSet tags on an absolute time grid, from one model.

Registered as task `"whisper-at"` when `whisper_at_hf` is imported, and written beside every saved
[`WhisperForAudioTaggingAndASR`] checkpoint (`custom_pipelines` in its config + this module and its relative imports),
so `pipeline("whisper-at", model=DIR, trust_remote_code=True)` works where the package is not installed. For that
reason this module only imports its siblings relatively.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from transformers.pipelines.automatic_speech_recognition import AutomaticSpeechRecognitionPipeline, chunk_iter
from transformers.pipelines.base import pad_collate_fn
from transformers.pipelines.pt_utils import PipelineChunkIterator, PipelineIterator, PipelinePackIterator
from transformers.utils import logging

from .audio import Audio, AudioDecodeError, load_audio
from .encoder_pass_cache import EncoderPassCache
from .labels import load_label_names
from .options import check_generate_kwargs, check_not_a_sample_list, check_pipeline_options
from .remote_code import PIPELINE_TASK as TASK
from .remote_code import custom_pipelines_entry
from .timeline import PooledSpan, WindowAssembler, pass_spans, window_bounds, windows_for_duration

logger = logging.get_logger(__name__)

# Long-form: aligned 30 s tag passes kept for Whisper's decoding to reuse (each: its features and (1500, d_model)).
_MAX_HELD_WINDOWS = 16
# `__call__` arguments that the base pipeline takes itself (not passed to `_sanitize_parameters`).
_CALL_ONLY_PARAMS = ("num_workers", "batch_size")


class _CallTimelines:
    """Per-call state of the tag timelines: the assembler of the input whose 30 s passes are arriving.

    One is made for every pipeline call (in `_sanitize_parameters`) and handed to `_forward` with the forward
    parameters, so calls sharing one pipeline (threads) never share a timeline. Passes of one input arrive in time
    order and inputs one after the other, so one current assembler suffices.
    """

    def __init__(self) -> None:
        self.current: WindowAssembler | None = None

    def push(self, pooled: torch.Tensor, span: PooledSpan, window: int) -> torch.Tensor:
        if span.start == 0:
            self.current = WindowAssembler(window)
        return self.current.push(pooled, span)


class WhisperATPipeline(AutomaticSpeechRecognitionPipeline):
    """Speech recognition with Whisper and audio tagging with the Whisper-AT head, from the same encoder passes.

    Inputs are those of [`AutomaticSpeechRecognitionPipeline`] (a path, the bytes of a file, a waveform with
    `sampling_rate=`, a `{"array" or "raw", "sampling_rate"}` dict, or a list of these); stereo is down-mixed and
    other rates are resampled. Output per input:

        {"text": str, "language": str | None, "chunks": [...] (with return_timestamps),
         "audio_tags": [{"timestamp": (start_s, end_s), "tags": [{"label": str, "score": float}, ...]}, ...],
         "audio_tag_logits": np.ndarray (num_windows, num_labels) (with return_tag_logits=True),
         "segments": [{"text", "timestamp", "words": [word chunks]}, ...] (with return_timestamps="word" and
             return_word_segments=True: Whisper's segments, each with its words, from the same tokens)}

    `text`, `chunks` and every generation argument (`generate_kwargs`, `language`, `task`, `return_timestamps`,
    `return_language`, `chunk_length_s`, `stride_length_s`) behave exactly as in the ASR pipeline. `language` is
    the language Whisper was told or detected (`"en"` for English-only checkpoints).

    Tag parameters: `at_time_res` (seconds, a multiple of 0.4; default `config.at_time_res`) sets the windows,
    `[k r, (k + 1) r)` on absolute time from 0 with the last one clipped to the input's end; `top_k` (5) and
    `tag_threshold` (a probability) filter each window's tags after `include_labels`/`exclude_labels` restricted the
    classes; `score` is the sigmoid probability; `label_language` is `"follow_asr"` (default), a code such as
    `"de"`, or `"en"` (English with a warning when the checkpoint lacks that language).

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

    Bad inputs: a single bad input raises [`AudioDecodeError`] (a `ValueError`); in a list, the bad input's entry is
    `{"error": message, "source": name}` and the others are processed as usual.
    """

    _non_generation_params = ("top_k",)

    def __init__(self, *args: Any, **kwargs: Any):
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
            sampling_rate=sampling_rate,
            at_time_res=at_time_res,
            top_k=top_k,
            tag_threshold=tag_threshold,
            include_labels=include_labels,
            exclude_labels=exclude_labels,
            label_language=label_language,
            chunk_length_s=kwargs.get("chunk_length_s"),
            stride_length_s=kwargs.get("stride_length_s"),
            return_timestamps=kwargs.get("return_timestamps"),
            num_beams=generation.get("num_beams"),
            max_new_tokens=generation.get("max_new_tokens"),
            language=generation.get("language"),
            task=generation.get("task"),
        )
        sampling_rate, at_time_res, top_k, tag_threshold, include_labels, exclude_labels = (
            checked[name]
            for name in ("sampling_rate", "at_time_res", "top_k", "tag_threshold", "include_labels", "exclude_labels")
        )
        for name in ("chunk_length_s", "stride_length_s"):  # canonical: the chunking tests for Python numbers
            if kwargs.get(name) is not None:
                kwargs[name] = checked[name]
        preprocess_params, forward_params, postprocess_params = super()._sanitize_parameters(**kwargs)
        if not multilingual:  # English / "transcribe": what an English-only model does anyway (options' one rule)
            forward_params.pop("language", None)
            forward_params.pop("task", None)
        if sampling_rate is not None:
            preprocess_params["sampling_rate"] = sampling_rate
        if at_time_res is not None:
            preprocess_params["at_time_res"] = at_time_res
            forward_params["at_time_res"] = at_time_res
            postprocess_params["at_time_res"] = at_time_res
        if top_k is not None:
            postprocess_params["top_k"] = top_k
        if tag_threshold is not None:
            postprocess_params["tag_threshold"] = tag_threshold
        for name, labels in (("include_labels", include_labels), ("exclude_labels", exclude_labels)):
            if labels is not None:
                postprocess_params[name] = labels
        if return_tag_logits is not None:
            postprocess_params["return_tag_logits"] = return_tag_logits
        if label_language is not None:
            postprocess_params["label_language"] = label_language
        if return_word_segments:
            if kwargs.get("return_timestamps") != "word":
                raise ValueError("return_word_segments=True needs return_timestamps='word'.")
            postprocess_params["return_word_segments"] = True
        # The language in `text` is needed to pick label names (and to report it).
        forward_params.setdefault("return_language", postprocess_params.get("return_language"))
        # A fresh timeline state per call: calls sharing this pipeline (threads) never share one.
        forward_params["timelines"] = _CallTimelines()
        return preprocess_params, forward_params, postprocess_params

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

    def _load(self, inputs: Any, sampling_rate: int | None) -> Audio:
        # As in the ASR pipeline, a bare array is taken to be at the feature extractor's rate unless told otherwise.
        target = self.feature_extractor.sampling_rate
        return load_audio(inputs, target, input_sampling_rate=target if sampling_rate is None else sampling_rate)

    # ----- preprocess -----------------------------------------------------------------------------------------------
    def preprocess(self, inputs, chunk_length_s=0, stride_length_s=None, sampling_rate=None, at_time_res=None):
        """Yields 30 s passes (or one long-form item) with what `_forward` needs to place their tags in time."""
        audio = self._load(inputs, sampling_rate)
        waveform, rate = audio.array, audio.sampling_rate
        frame_samples = int(round(self.model.config.at_pooled_frame_seconds * rate))
        total_frames = math.ceil(waveform.shape[0] / frame_samples)
        common = {"audio_seconds": audio.duration, "source": audio.source, "timeline_frames": total_frames}

        if chunk_length_s:
            yield from self._preprocess_chunks(waveform, chunk_length_s, stride_length_s, frame_samples, common)
            return
        if waveform.shape[0] > self.feature_extractor.n_samples:
            processed = self._features(waveform, truncation=False, padding="longest")
            span = None  # tagged in `_forward` by extra aligned passes
        else:
            processed = self._features(waveform)
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
        total_samples = waveform.shape[0]
        total_frames = math.ceil(total_samples / frame_samples)
        step = chunk_len - stride_left - stride_right
        on_grid = step % frame_samples == 0

        items = []
        chunks = chunk_iter(waveform, self.feature_extractor, chunk_len, stride_left, stride_right, self.dtype)
        for index, chunk in enumerate(chunks):  # chunk k starts at k * step (only a last, too short one is dropped)
            start, is_last = index * step, chunk.pop("is_last")
            length, left, right = chunk["stride"]
            span = None
            if on_grid:
                own_start = 0 if start == 0 else (start + left) // frame_samples
                own_stop = total_frames if is_last else (start + length - right) // frame_samples
                span = PooledSpan(start // frame_samples, own_start, own_stop, is_last)
            items.append({**chunk, "decode": True, "span": span})
        if not on_grid:
            logger.info("chunk starts are off the 0.4 s tag grid: tagging with extra aligned 30 s passes.")
            window_samples = self.feature_extractor.n_samples
            for start in range(0, total_samples, window_samples):
                piece = waveform[start : start + window_samples]
                final = start + window_samples >= total_samples
                stop = total_frames if final else (start + window_samples) // frame_samples
                span = PooledSpan(start // frame_samples, start // frame_samples, stop, final)
                items.append({"stride": (piece.shape[0], 0, 0), **self._features(piece), "decode": False, "span": span})
        for index, item in enumerate(items):
            yield {"is_last": index == len(items) - 1, **item, **common}

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
        timelines: _CallTimelines | None = None,
        tag_batch_size: int = 1,
        **generate_kwargs,
    ):
        is_last = model_inputs.pop("is_last")
        batched = isinstance(is_last, list)
        items = len(is_last) if batched else 1

        def per_item(key: str) -> list:
            if key not in model_inputs:
                return [None] * items
            value = model_inputs.pop(key)
            return value if batched else [value]

        decode, spans, strides = per_item("decode"), per_item("span"), per_item("stride")
        seconds, sources, timeline_frames = per_item("audio_seconds"), per_item("source"), per_item("timeline_frames")
        timelines = timelines if timelines is not None else _CallTimelines()
        features = model_inputs.pop("input_features")
        attention_mask = model_inputs.pop("attention_mask", None)
        batch_size = features.shape[0]

        return_timestamps = return_timestamps or getattr(self.model.generation_config, "return_timestamps", False)
        if return_timestamps:
            generate_kwargs["return_timestamps"] = True
            if return_timestamps == "word":
                generate_kwargs["return_token_timestamps"] = True
                generate_kwargs["return_segments"] = True
        # upstream-coupled: the pipeline's generation defaults, as the ASR pipeline applies them
        # (Pin: test_pipeline_prepare_generate_kwargs_adds_the_defaults)
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
        told_language = generate_kwargs.get("language")
        multilingual = getattr(generate_kwargs.get("generation_config", self.model.generation_config), "is_multilingual", False)
        if return_language or (multilingual and told_language is None):
            generate_kwargs["return_segments"] = True  # the full sequences hold the language token

        segment_frames = self.feature_extractor.nb_max_frames
        rows = [index for index in range(batch_size) if decode[index]]
        if features.shape[-1] <= segment_frames:
            # One encoder pass per 30 s item feeds the head and the decoder: generate runs on the features (so
            # Whisper's timestamp seeks, temperature fallback and no-speech checks work as in the ASR pipeline) while
            # its encoder calls on these same features are answered from this pass.
            encoded = self.model.encode(features)
            window_logits = self._tag_passes(encoded.pooled_hidden_states, spans, at_time_res, timelines)
            generated = None
            if rows:
                select = rows if len(rows) < batch_size else slice(None)
                generated = self.model.generate(
                    input_features=features[select],
                    attention_mask=None if attention_mask is None else attention_mask[select],
                    encoder_pass_cache=EncoderPassCache(features, encoded),
                    **generate_kwargs,
                )
        else:
            # Tag passes first, kept (up to a bound) with the windows they ran on: Whisper's first window (seek 0) and
            # every seek that lands on a 30 s boundary (common after music or silence) are answered from them.
            window_logits, held = self._tag_long(features, timeline_frames, at_time_res, tag_batch_size)
            # Whisper's sequential long-form decoding moves by its timestamps, so it always predicts them (as the
            # original does); the text is the same, and `chunks` are returned only when asked for.
            generate_kwargs["return_timestamps"] = True
            generated = self.model.generate(
                input_features=features, attention_mask=attention_mask, encoder_pass_cache=held, **generate_kwargs
            )

        out = {key: [None] * batch_size for key in ("tokens", "token_timestamps", "lang_id", "language")}
        if generated is not None:
            self._split_generated(generated, rows, told_language, return_timestamps == "word", out)
            undetected = [row for row in rows if out["language"][row] is None]
            if undetected and multilingual and features.shape[-1] <= segment_frames:
                # Whisper detected a language but returned no segment to read it from (no-speech skip): ask again,
                # one decoder step on the same encoder pass (the original reports the language here too).
                self._detect_language(encoded.last_hidden_state[undetected], undetected, out)
        result = {"is_last": is_last, **out}
        if any(stride is not None for stride in strides):
            result["stride"] = strides
        result.update(audio_tag_logits=window_logits, decode=decode, audio_seconds=seconds, source=sources)
        if not batched:  # one item: tensors as `(1, ...)`, as the pack iterator makes batched items look
            result = {
                key: (value[0][None] if isinstance(value[0], torch.Tensor) else value[0]) if key != "is_last" else value
                for key, value in result.items()
            }
        return result

    def _split_generated(self, generated, rows, told_language, word_timestamps, out) -> None:
        """Spreads `generate`'s output for the decoded `rows` over the batch's items."""
        sequences = generated["sequences"] if isinstance(generated, dict) else generated
        segments = generated.get("segments") if isinstance(generated, dict) else None
        token_timestamps = generated.get("token_timestamps") if isinstance(generated, dict) else None
        generation_config = self.model.generation_config
        id_to_language = _id_to_language(generation_config)
        for position, row in enumerate(rows):
            out["tokens"][row] = sequences[position].long()  # a skipped (no-speech) window comes back as float []
            if word_timestamps:
                if segments is not None and segments[position]:
                    out["token_timestamps"][row] = torch.cat([s["token_timestamps"] for s in segments[position]])
                elif token_timestamps is not None:
                    out["token_timestamps"][row] = token_timestamps[position]
            language = None
            if segments is not None and segments[position]:
                full = _full_sequence(segments[position])
                found = next((int(t) for t in full.tolist() if int(t) in id_to_language), None)
                if found is not None:
                    out["lang_id"][row] = torch.tensor(found)
                    language = id_to_language[found]
            if language is None:
                given = told_language[position] if isinstance(told_language, (list, tuple)) else told_language
                language = _language_code(given) if given else None
            if language is None and not getattr(generation_config, "is_multilingual", True):
                language = "en"
            out["language"][row] = language
        if all(value is None for value in out["token_timestamps"]):
            out.pop("token_timestamps")

    def _detect_language(self, encoder_states: torch.Tensor, rows: list[int], out: dict) -> None:
        """Fills `lang_id`/`language` of `rows` from Whisper's language detection on `encoder_states` `(n, T, d)`."""
        from transformers.modeling_outputs import BaseModelOutput

        generation_config = self.model.generation_config
        id_to_language = _id_to_language(generation_config)
        with torch.no_grad():
            detected = self.model.detect_language(encoder_outputs=BaseModelOutput(last_hidden_state=encoder_states))
        for row, token_id in zip(rows, detected.tolist()):
            if token_id in id_to_language:
                out["lang_id"][row] = torch.tensor(token_id)
                out["language"][row] = id_to_language[token_id]

    # ----- tags -----------------------------------------------------------------------------------------------------
    def _tag_passes(
        self, pooled: torch.Tensor, spans: list, at_time_res: float | None, timelines: _CallTimelines
    ) -> list[torch.Tensor | None]:
        """Head logits for the windows each 30 s pass completes. `pooled`: `(B, L, 75, d)` -> per item `(n, C)`."""
        window = self.model.config.at_window_frames(at_time_res)
        pieces, counts = [], []
        for index, span in enumerate(spans):
            if span is None:
                counts.append(None)
                continue
            windows = timelines.push(pooled[index], span, window)
            pieces.append(windows)
            counts.append(windows.shape[0])
        return self._run_head(pieces, counts, at_time_res)

    def _run_head(self, pieces: list[torch.Tensor], counts: list, at_time_res: float | None) -> list:
        """One head call for all windows of the batch: `(n, L, window, d)` pieces -> `(n_i, C)` per item."""
        if pieces and sum(piece.shape[0] for piece in pieces):
            windows = torch.cat(pieces)
            logits = self.model.tag_pooled(windows, at_time_res)[:, 0]  # (n, 1, C) -> (n, C)
        else:
            logits = torch.zeros(0, self.model.config.num_labels)
        results, position = [], 0
        for count in counts:
            if count is None:
                results.append(None)
                continue
            results.append(logits[position : position + count])
            position += count
        return results

    def _tag_long(self, features: torch.Tensor, timeline_frames: list[int], at_time_res: float | None, group: int):
        """Tags for long-form items by extra passes over aligned 30 s windows of their features, at least `group`
        passes per encoder call (Whisper's own long-form passes move by decoded timestamps, off the pooled grid).

        Returns `(logits per item, cache)`: an [`EncoderPassCache`] of the passes `generate` may reuse — every item's
        first window (also Whisper's first) and, up to `_MAX_HELD_WINDOWS` in all, the following ones (memory stays
        bounded for hours of audio)."""
        segment_frames = self.feature_extractor.nb_max_frames
        per_pass = self.model.config.at_pooled_frames_per_window
        window = self.model.config.at_window_frames(at_time_res)
        passes = [(index, span) for index, total in enumerate(timeline_frames) for span in pass_spans(total, per_pass)]
        group = max(group or 1, features.shape[0])
        assemblers = [WindowAssembler(window) for _ in timeline_frames]
        per_item: list[list[torch.Tensor]] = [[] for _ in timeline_frames]
        held_windows, held_states = [], []
        for begin in range(0, len(passes), group):
            chunk = passes[begin : begin + group]
            segments = []
            for index, span in chunk:
                start = span.offset * segment_frames // per_pass
                segment = features[index, :, start : start + segment_frames]
                segments.append(torch.nn.functional.pad(segment, (0, segment_frames - segment.shape[-1])))
            encoded = self.model.encode(torch.stack(segments))
            pieces = []
            for row, (index, span) in enumerate(chunk):
                pieces.append(assemblers[index].push(encoded.pooled_hidden_states[row], span))
                if span.offset == 0 or len(held_windows) < _MAX_HELD_WINDOWS:
                    held_windows.append(segments[row])
                    held_states.append(encoded.last_hidden_state[row])
            logits = self._run_head(pieces, [piece.shape[0] for piece in pieces], at_time_res)
            for (index, _), item_logits in zip(chunk, logits):
                per_item[index].append(item_logits)
        held = EncoderPassCache(torch.stack(held_windows), (torch.stack(held_states),))
        return [torch.cat(logits) for logits in per_item], held

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
    ):
        logits = [output.pop("audio_tag_logits") for output in model_outputs]
        decode = [output.pop("decode") for output in model_outputs]
        languages = [output.pop("language") for output in model_outputs]
        seconds = model_outputs[0].pop("audio_seconds")
        for output in model_outputs:
            output.pop("audio_seconds", None)
            output.pop("source", None)
            if output.get("lang_id") is None or not return_language:
                output.pop("lang_id", None)
            if output.get("token_timestamps", 0) is None:
                output.pop("token_timestamps")
            elif "token_timestamps" in output and "lang_id" in output:
                output["token_timestamps"] = _times_for_language_token(output["token_timestamps"])
        text_outputs = [output for output, wanted in zip(model_outputs, decode) if wanted]
        segments = None
        if return_word_segments and return_timestamps == "word":
            # The same tokens decoded a second time at segment level (the ASR postprocess consumes its inputs: copies).
            copies = [{key: value for key, value in output.items() if key != "token_timestamps"} for output in text_outputs]
            segments = super().postprocess(copies, return_timestamps=True, return_language=return_language)["chunks"]
        result = super().postprocess(text_outputs, return_timestamps=return_timestamps, return_language=return_language)
        if segments is not None:
            result["segments"] = _nest_words(segments, result.get("chunks", []))
        language = next((code for code, wanted in zip(languages, decode) if wanted and code), None)

        tag_logits = torch.cat([item[0] for item in logits if item is not None]).float()
        resolution = at_time_res if at_time_res is not None else self.model.config.at_time_res
        tag_logits = tag_logits[: windows_for_duration(seconds, resolution)]
        names = self._names(language if label_language == "follow_asr" else label_language)
        ordered = {"text": result.pop("text"), "language": language, **result}
        ordered["audio_tags"] = self._format_tags(
            tag_logits, names, resolution, seconds, top_k, tag_threshold, include_labels, exclude_labels
        )
        if return_tag_logits:
            ordered["audio_tag_logits"] = tag_logits.numpy()
        return ordered

    def _names(self, language: str | None) -> list[str]:
        if getattr(self, "_label_names", None) is None:
            self._label_names = load_label_names(self.model.name_or_path or None, self.model.config.id2label)
        return self._label_names.get(language or "en")

    def _all_label_names(self) -> set[str]:
        """Every class name of the checkpoint, in every language it has names in (what include/exclude accept)."""
        self._names("en")
        return {name for names in self._label_names.names_by_language.values() for name in names}

    def _format_tags(self, logits, names, resolution, seconds, top_k, threshold, include, exclude) -> list[dict]:
        """`(num_windows, C)` logits -> per window the top-k labels (after include/exclude, above the threshold)."""
        english = self._label_names.get("en")
        candidates = torch.arange(logits.shape[-1])
        if include is not None or exclude is not None:
            known = {n: i for names_ in self._label_names.names_by_language.values() for i, n in enumerate(names_)}
            known |= {name: index for index, name in enumerate(english)} | {n: i for i, n in enumerate(names)}
            unknown = [label for label in (include or []) + (exclude or []) if label not in known]
            if unknown:
                raise ValueError(f"unknown labels {unknown}; labels are the checkpoint's class names.")
            keep = set(range(logits.shape[-1])) if include is None else {known[label] for label in include}
            keep -= {known[label] for label in exclude or []}
            candidates = torch.tensor(sorted(keep), dtype=torch.long)
        scores = torch.sigmoid(logits[:, candidates])
        k = min(top_k, candidates.numel())
        top_scores, top_index = scores.topk(k, dim=-1) if k else (scores[:, :0], scores[:, :0].long())
        windows = []
        for window_index in range(logits.shape[0]):
            tags = [
                {"label": names[int(candidates[index])], "score": float(score)}
                for score, index in zip(top_scores[window_index].tolist(), top_index[window_index].tolist())
                if threshold is None or score >= threshold
            ]
            # 10 ms precision (Whisper's timestamps step by 20 ms): an 89.002 s file ends its last window at 89.0
            windows.append({"timestamp": window_bounds(window_index, resolution, seconds), "tags": tags})
        return windows

    # ----- upstream-coupled (transformers' ASR pipeline); each piece is pinned by tests/test_upstream_pins.py -------
    # Pin: test_asr_pipeline_takes_the_whisper_path_only_for_model_type_whisper.
    # Whisper-AT is Whisper: always take the ASR pipeline's Whisper path. Its `__init__` picks the path from
    # `model_type == "whisper"` (ours is "whisper_at") and uses it while parsing init kwargs, so a fixed property
    # (ignoring that assignment) is the one place that gets it right from the start.
    @property
    def type(self) -> str:
        return "seq2seq_whisper"

    @type.setter
    def type(self, value: str) -> None:
        pass

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


def _id_to_language(generation_config) -> dict[int, str]:
    """Language token id -> code (`50259 -> "en"`) from a Whisper generation config (empty for English-only)."""
    return {token_id: token[2:-2] for token, token_id in getattr(generation_config, "lang_to_id", {}).items()}


def _nest_words(segments: list[dict], words: list[dict]) -> list[dict]:
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


# --------------------------------------------------------------------------------------------------------------------
# Upstream-coupled helpers (transformers' Whisper generate and ASR pipeline), pinned by tests/test_upstream_pins.py
# --------------------------------------------------------------------------------------------------------------------
def _full_sequence(segment_list: list[dict]) -> torch.Tensor:
    """One item's full first-segment sequence (language token included) from Whisper's `return_segments` output;
    `generate` strips the init tokens from `sequences`. Pin: test_whisper_segments_hold_the_full_sequence."""
    result = segment_list[0]["result"]
    return result["sequences"] if isinstance(result, dict) else result


def _times_for_language_token(times: torch.Tensor) -> torch.Tensor:
    """The ASR postprocess puts the language token in front of the tokens but not of their times, which would give
    every word the next token's time: shift the times along (token i spans t[i-1]..t[i]).
    Pin: test_asr_postprocess_prepends_the_language_token."""
    return torch.cat([times.new_zeros(times.shape[:-1] + (1,)), times], dim=-1)


def _language_code(language: str | None) -> str | None:
    """`"German"`, `"german"`, `"de"` or `"<|de|>"` -> `"de"`."""
    if language is None:
        return None
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    language = language.strip()
    if language.startswith("<|") and language.endswith("|>"):
        return language[2:-2]
    return TO_LANGUAGE_CODE.get(language.lower(), language.lower())


def _first_item(items):
    return items[0]


def _pad_features_collate(tokenizer, feature_extractor):
    """transformers' `pad_collate_fn`, after padding `input_features` `(1, mel, frames)` to the longest in time."""
    inner = pad_collate_fn(tokenizer, feature_extractor)

    def collate(items):
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


__all__ = ["TASK", "WhisperATPipeline", "custom_pipelines_entry"]
