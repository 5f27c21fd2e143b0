"""Live captions and sound tags: a stream of 16 kHz audio in, updates of committed words, tags and events out.

    stream = LiveTranscriber(pipe_or_model, step_s=0.8)
    for chunk in microphone_chunks():
        for update in stream.push(chunk):
            print(update["committed_text"], update["tentative_text"], update["tags"])
    last = stream.finish()

Every step makes ONE encoder pass over a rolling buffer (at most `max_buffer_s` = 30 s, one Whisper window): its
pooled states feed the head (tags of the newest audio, points of the fine event curve) and the pass itself answers
`generate`'s encoder calls through an [`EncoderPassCache`]. Words are committed by LocalAgreement-2 (a word is final
once two consecutive hypotheses agree on it, as whisper_streaming does), with times from Whisper's alignment heads
(`return_token_timestamps`); committed text before the buffer is the decoder prompt; the buffer is trimmed at
committed sentence ends, always at a 0.4 s pooled-frame boundary of the stream, so tags and events lie on the same
absolute grid as offline (`tags.EVENT_HOP_SECONDS` points, `tags.EVENT_WINDOW_SECONDS` windows, `EventSegmenter`).

Bounded lag: a `push` runs at most one step, on the newest buffer, however much audio it brings, so a caller that
falls behind (audio piles up while a step computes) skips steps instead of queueing them. `live_updates(...,
coalesce=True)` reads the source on a thread and hands each step all audio that arrived meanwhile. Memory is flat:
the buffer never exceeds `max_buffer_s`, and only a bounded tail of committed text is kept (on the stream object,
never on the model: one model serves many streams and threads).
"""

from __future__ import annotations

import queue
import re
import threading
import zlib
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from .encoder_pass_cache import EncoderPassCache
from .labels import model_label_names
from .option_rules import LIVE_STEP_SECONDS
from .options import check_event_options, check_int, check_labels, check_language, check_number, check_tag_threshold
from .tags import (
    EVENT_HOP_SECONDS,
    EVENT_SMOOTHING_POINTS,
    EVENT_WINDOW_SECONDS,
    EventSegmenter,
    candidate_ids,
    name_events,
    smooth_curve,
    top_tags,
)

SAMPLING_RATE = 16000
FRAME_SAMPLES = int(EVENT_HOP_SECONDS * SAMPLING_RATE)  # one pooled frame (0.4 s): buffer cuts fall on this grid
PROMPT_CHARS = 200  # committed text handed to the decoder as its prompt (whisper_streaming uses 200 too)
TEXT_CHARS = 2000  # committed text kept for `committed_text` (older text came in earlier updates' `new_words`)
TOKENS_PER_SECOND = 6
TAGS_WINDOW_SECONDS = 2.0  # `tags` of each update: steadier than the 0.4 s event window, still a step or two behind
MAX_TENTATIVE_SECONDS = 3.0  # a word two hypotheses heard but spelled apart is committed once this old (bounded lag)
CUT_MARGIN_S = 0.3  # a forced cut also commits the words this close after it (more than the alignment's jitter)
FLUSH_MIN_S = 2.0  # at the end, audio past the committed end that is decoded again
FLUSH_PASSES = 3
_SENTENCE_END = re.compile(r"[.!?。！？]['\")\]]*$")


def features_seconds(attention_mask: torch.Tensor) -> float:
    """Seconds of real audio in the features (100 mel frames a second)."""
    return float(attention_mask.sum()) / 100


def _norm(word: str) -> str:
    """A word as the agreement compares it: lower case, without punctuation."""
    return re.sub(r"[^\w']", "", word.lower())


def _mid(word: dict) -> float:
    """A word's midpoint on the stream's clock: where the agreement, the prompt and the cuts place it."""
    return (word["start"] + word["end"]) / 2


def normalize_for_wer(text: str) -> str:
    """Text as word error rates compare it: lower case, hyphens as spaces, no punctuation, single spaces."""
    words = (_norm(word) for word in text.replace("-", " ").split())
    return " ".join(word for word in words if word)


# ----- hypotheses ------------------------------------------------------------------------------------------------------
def words_from_tokens(
    tokens: Sequence[int], starts: Sequence[float], ends: Sequence[float], tokenizer: Any, offset_s: float
) -> list[dict]:
    """Whisper text tokens with their times (alignment heads) -> words `{"word", "start", "end"}`.

    Args:
        tokens: text token ids of one hypothesis (no special tokens), `n`.
        starts / ends: `n` token start / end times in seconds of the buffer.
        tokenizer: Whisper's tokenizer; a token whose byte-level form starts with a space ("Ġ") starts a word, and
            each word's tokens are decoded together (a character may span tokens).
        offset_s: the buffer's start on the stream's clock.
    """
    groups: list[list[int]] = []
    for index, piece in enumerate(tokenizer.convert_ids_to_tokens(list(tokens))):
        if not groups or piece.startswith("\u0120"):
            groups.append([])
        groups[-1].append(index)
    words = []
    for group in groups:
        text = tokenizer.decode([tokens[i] for i in group]).strip()
        if text:
            start, end = offset_s + float(starts[group[0]]), offset_s + float(ends[group[-1]])
            words.append({"word": text, "start": round(start, 2), "end": round(max(end, start), 2)})
    return words


def alignment_cross_attentions(
    model: Any, sequences: torch.Tensor, encoder_states: torch.Tensor
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """Cross-attention weights of the decoder's layers on `sequences[:, :-1]` teacher-forced, as eager attention's
    `cross_attentions`: per layer `(b, heads, n - 1, frames)`; only the layers holding an alignment head are
    computed (the others are zeros, never materialised). Also returns the decoder's last hidden state
    `(b, n - 1, d_model)` (its logits score the hypothesis).

    Computed from the decoder's hidden states (any attention implementation; asking `generate` for
    `return_token_timestamps` instead switches the shared model's config to eager attention for good, and keeps
    attention at every decoding step).
    """
    # ----- upstream-coupled: the layout of Whisper's decoder layer (self-attention, then the cross-attention's query
    # from `encoder_attn_layer_norm`, scaled as `encoder_attn.scaling`). Pinned by
    # tests/test_upstream_pins.py::test_alignment_cross_attentions_equal_eager_attentions.
    decoder = model.get_decoder()
    inputs = sequences[:, :-1]
    output = decoder(input_ids=inputs, encoder_hidden_states=encoder_states, output_hidden_states=True, use_cache=False)
    batch, length = inputs.shape
    frames = encoder_states.shape[1]
    wanted = {int(layer) for layer, _ in model.generation_config.alignment_heads}
    causal = torch.full((length, length), float("-inf"), device=inputs.device).triu(1)[None, None]
    per_layer = []
    for index, layer in enumerate(decoder.layers):
        attention = layer.encoder_attn
        if index not in wanted:
            per_layer.append(encoder_states.new_zeros(()).expand(batch, attention.num_heads, length, frames))
            continue
        hidden = output.hidden_states[index]  # the layer's input
        mask = causal.to(hidden.dtype)
        hidden = hidden + layer.self_attn(layer.self_attn_layer_norm(hidden), attention_mask=mask)[0]
        query = attention.q_proj(layer.encoder_attn_layer_norm(hidden)) * attention.scaling
        key = attention.k_proj(encoder_states)
        query = query.view(batch, length, attention.num_heads, -1).transpose(1, 2)
        key = key.view(batch, frames, attention.num_heads, -1).transpose(1, 2)
        per_layer.append(torch.softmax((query @ key.transpose(-1, -2)).float(), dim=-1))
    return tuple(per_layer), output.last_hidden_state


def token_end_times(
    model: Any,
    sequences: torch.Tensor,
    attentions: tuple[torch.Tensor, ...],
    num_frames: int | None = None,
    num_input_ids: int | None = None,
) -> torch.Tensor:
    """Where each token of `sequences` `(b, n)` ends, in seconds of its 30 s window, from the alignment heads.

    The same DTW over the same heads as `generate(..., return_token_timestamps=True)`, on the cross-attentions of
    one teacher-forced pass (`attentions` from [`alignment_cross_attentions`]) after a fast decoding. Returns `(b, n)`: entry `i` is
    where token `i` ends (entry `i - 1` where it starts), as transformers' `token_timestamps`. `num_frames`: mel frames
    of real audio (DTW stays inside them); `num_input_ids`: the forced prefix (prompt, start, language, task tokens),
    left out of the DTW as by `generate`.
    """
    # ----- upstream-coupled: Whisper's DTW (`_extract_token_timestamps`) fed one "step" holding every position.
    # Pinned by tests/test_upstream_pins.py::test_token_end_times_equal_generate_token_timestamps.
    from transformers.generation.utils import GenerateEncoderDecoderOutput

    steps = GenerateEncoderDecoderOutput(sequences=sequences, cross_attentions=(attentions,))
    alignment_heads = model.generation_config.alignment_heads
    return model._extract_token_timestamps(steps, alignment_heads, num_frames=num_frames, num_input_ids=num_input_ids)


def looks_like_no_speech(
    model: Any, sequence: torch.Tensor, hidden: torch.Tensor, positions: list[int], no_speech_id: int | None
) -> bool:
    """Whisper's own hallucination checks on one hypothesis: no-speech probability above 0.6 with a mean token
    log-probability below -1, or text that compresses more than 2.4x (a loop).

    `sequence` `(n,)`, `hidden` `(n - 1, d_model)` the decoder's states on it, `positions` its text tokens.
    """
    text_ids = sequence[positions]
    logits = model.proj_out(hidden[[p - 1 for p in positions]]).float()
    mean_logprob = float(torch.log_softmax(logits, -1).gather(-1, text_ids[:, None]).mean())
    if no_speech_id is not None:
        start = positions[0] - 1
        while start > 0 and int(sequence[start]) != model.generation_config.decoder_start_token_id:
            start -= 1  # the <|startoftranscript|> position predicts <|nospeech|>
        no_speech = float(torch.softmax(model.proj_out(hidden[start]).float(), -1)[no_speech_id])
        if no_speech > 0.6 and mean_logprob < -1.0:
            return True
    text = " ".join(str(int(t)) for t in text_ids)
    return len(positions) > 12 and len(text) / len(zlib.compress(text.encode())) > 2.4


class LocalAgreement:
    """LocalAgreement-2: commits the longest prefix on which the last two hypotheses (past the committed text) agree.

    A new hypothesis of the whole buffer repeats the committed words still in the buffer. They are recognised by
    audio time, on the stream's clock: a word whose midpoint lies inside the committed audio (before `committed_end`)
    is not new. (Its midpoint, not its start: the alignment heads give a hypothesis' first word the buffer's start,
    which lies in committed audio after a trim.) Then a repeat of the last committed words (up to 5) at its head is
    dropped (alignment jitter around the committed end).
    """

    def __init__(self) -> None:
        self.committed_end = 0.0
        self._recent: deque[str] = deque(maxlen=5)  # the last committed words, normalised
        self.tentative: list[dict] = []  # the previous hypothesis past the committed words

    def insert(self, hypothesis: list[dict]) -> list[dict]:
        """Takes the newest hypothesis; returns the words it commits (times from the newest one)."""
        new = [word for word in hypothesis if not self.inside_committed(word)]
        if new and new[0]["start"] < self.committed_end + 1.0:
            recent = list(self._recent)
            for n in range(min(len(recent), len(new)), 0, -1):
                if recent[-n:] == [_norm(word["word"]) for word in new[:n]]:
                    new = new[n:]
                    break
        agreed = 0
        for previous, current in zip(self.tentative, new):
            if _norm(previous["word"]) != _norm(current["word"]):
                break
            agreed += 1
        committed, self.tentative = new[:agreed], new[agreed:]
        self._note(committed)
        return committed

    def inside_committed(self, word: dict) -> bool:
        """Whether `word` lies in audio already committed (its midpoint before `committed_end`)."""
        return _mid(word) < self.committed_end

    def commit_all(self, before_s: float | None = None) -> list[dict]:
        """Commits the tentative words: all (at the end), or those whose midpoint lies before `before_s` (a forced
        cut); the later ones stay tentative, to be confirmed by the next hypothesis."""
        cut = len(self.tentative) if before_s is None else sum(1 for w in self.tentative if _mid(w) < before_s)
        committed, self.tentative = self.tentative[:cut], self.tentative[cut:]
        self._note(committed)
        return committed

    def _note(self, committed: list[dict]) -> None:
        if committed:
            self.committed_end = max(self.committed_end, committed[-1]["end"])
            self._recent.extend(_norm(word["word"]) for word in committed)


# ----- the fine curve, live --------------------------------------------------------------------------------------------
class LiveEventCurve:
    """The event curve of a stream, point by point as its pooled frames arrive; segmented by [`EventSegmenter`].

    Point `j` covers the stream's pooled frames `[j, j + 1)` and reads the `window` frames centred on it, moved
    inside the stream at its start (and, at `finish`, its end) — the offline grid of `tags`. A point is computed once
    all its frames are in the buffer; it is smoothed (median of `EVENT_SMOOTHING_POINTS`) once its neighbours exist.
    """

    def __init__(self, segmenter: EventSegmenter, window: int):
        self.segmenter = segmenter
        self.window = window
        self.next_point = 0  # first point not yet computed
        self._raw: deque[np.ndarray] = deque(maxlen=EVENT_SMOOTHING_POINTS)  # last raw points `(C,)`
        self._smoothed = 0  # points handed to the segmenter

    def window_start(self, point: int, total_frames: int | None = None) -> int:
        """First stream frame of point `point`'s window (clamped to the stream's end once `total_frames` is known)."""
        start = max(point - (self.window - 1) // 2, 0)
        return start if total_frames is None else max(min(start, total_frames - self.window), 0)

    def ready_points(self, frames_available: int, total_frames: int | None = None) -> range:
        """Points whose windows lie within the first `frames_available` stream frames (all of them at the end)."""
        if total_frames is not None:
            return range(self.next_point, max(total_frames, 1))
        last = self.next_point
        while self.window_start(last) + self.window <= frames_available:
            last += 1
        return range(self.next_point, last)

    def add(self, probs: np.ndarray, final: bool = False) -> list[dict]:
        """Adds raw points `(n, C)` (in order; `final`: the stream's last ones); returns events that became final."""
        half = EVENT_SMOOTHING_POINTS // 2
        events = []
        for row in probs:
            self._raw.append(row)
            self.next_point += 1
            events += self._emit(self.next_point - half)
        if final:
            events += self._emit(self.next_point)
        return events

    def _emit(self, stop: int) -> list[dict]:
        """Smooths points up to `stop` (each a median of its neighbours, edges repeated, as `smooth_curve`) and
        segments them."""
        half = EVENT_SMOOTHING_POINTS // 2
        first = self.next_point - len(self._raw)
        events = []
        while self._smoothed < stop:
            point = self._smoothed
            rows = [self._raw[min(max(point + o, 0), self.next_point - 1) - first] for o in range(-half, half + 1)]
            events += self.segmenter.push(smooth_curve(np.stack(rows))[half : half + 1])
            self._smoothed += 1
        return events


# ----- the stream ------------------------------------------------------------------------------------------------------
class LiveTranscriber:
    """Captions and sound tags of one live stream, step by step.

    Args:
        model_or_pipeline: a `pipeline("whisper-at")` or a [`WhisperForAudioTaggingAndASR`] (its processor is then
            loaded from `model.name_or_path` unless `feature_extractor` / `tokenizer` are given).
        step_s: seconds of new audio between steps (`> 0`, at most half of `max_buffer_s`).
        language / task: as Whisper's (multilingual checkpoints; default: detected each step, "transcribe").
        top_k / tag_threshold / include_labels / exclude_labels / label_language: the tags, as offline.
        event_threshold / event_offset_threshold / event_min_duration / event_min_gap: the events, as offline.
        tags_window_s: the window of `tags` over the newest audio (a positive multiple of 0.4 s, at most 30 s;
            default `TAGS_WINDOW_SECONDS`, 2 s: steadier than the 0.4 s event window, which `events` keep).
        max_buffer_s: the most audio one step reads (`<= 30`, one Whisper window).
        trim_s: past this many seconds the buffer is cut at the last committed sentence end (else at the last
            committed word; with nothing heard, to its last `step_s + EVENT_WINDOW_SECONDS`).
        max_tentative_s: a tentative word that the previous hypothesis held too and whose midpoint lies this many
            seconds before the newest audio is committed from the newest hypothesis even though the two disagree
            (speech over music or noise can keep hypotheses apart for the whole 30 s window; without this such
            words wait for the forced cut). `None`: only LocalAgreement and the cut commit.
        num_beams: Whisper's beam size (default 1, greedy: live steps are latency bound).
        clock: seconds, for `compute_s` (tests and benchmarks may pass their own).

    `push(samples)` / `finish()` return lists of updates, each a dict:
    `audio_time` (seconds of audio received), `new_words` (committed in this step, `{"word", "start", "end"}`),
    `committed_text` (the last `TEXT_CHARS` characters committed), `tentative_text`, `tags` (`{"label", "score"}` of
    the newest `tags_window_s` of complete 0.4 s frames, fewer at the start), `tags_window` (`[start, end]` of it),
    `events` (events that became final, and the ongoing ones with `"end": None`), `compute_s` (wall time of the step)
    and `skipped_steps` (steps not run because the audio came faster than the steps ran). Times are seconds of audio
    since the stream started.
    """

    def __init__(
        self,
        model_or_pipeline: Any,
        step_s: float = LIVE_STEP_SECONDS,
        *,
        language: str | None = None,
        task: str = "transcribe",
        top_k: int = 5,
        tag_threshold: float | None = None,
        include_labels: Sequence[str] | None = None,
        exclude_labels: Sequence[str] | None = None,
        label_language: str = "en",
        event_threshold: float | None = None,
        event_offset_threshold: float | None = None,
        event_min_duration: float | None = None,
        event_min_gap: float | None = None,
        tags_window_s: float = TAGS_WINDOW_SECONDS,
        max_buffer_s: float = 30.0,
        trim_s: float = 15.0,
        max_tentative_s: float | None = MAX_TENTATIVE_SECONDS,
        num_beams: int = 1,
        feature_extractor: Any = None,
        tokenizer: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_buffer_s = check_number("max_buffer_s", max_buffer_s, 2 * EVENT_WINDOW_SECONDS, 30.0)
        self.step_s = check_number("step_s", step_s, 0.0, self.max_buffer_s / 2, strict_minimum=True)
        self.trim_s = check_number("trim_s", trim_s, self.step_s, self.max_buffer_s)
        self.max_tentative_s = (
            None if max_tentative_s is None else check_number("max_tentative_s", max_tentative_s, 0.0, self.max_buffer_s)
        )
        self.top_k = check_int("top_k", top_k)
        self.tag_threshold = None if tag_threshold is None else check_tag_threshold(tag_threshold)
        self.num_beams = check_int("num_beams", num_beams)
        if task not in ("transcribe", "translate"):
            raise ValueError(f'task must be "transcribe" or "translate", got {task!r}.')
        events = check_event_options(event_threshold, event_offset_threshold, event_min_duration, event_min_gap)
        self.language = None if language is None else check_language("language", language)
        self.task = task
        self.clock = clock
        self._load(model_or_pipeline, feature_extractor, tokenizer)
        self._names_for_labels(include_labels, exclude_labels, label_language)
        self.window = self.model.config.at_window_frames(EVENT_WINDOW_SECONDS)
        self.tags_frames = self.model.config.at_window_frames(tags_window_s)
        segmenter = EventSegmenter(
            self.candidates,
            EVENT_HOP_SECONDS,
            **{key.removeprefix("event_"): value for key, value in events.items() if value is not None},
        )
        self.curve = LiveEventCurve(segmenter, self.window)
        self.agreement = LocalAgreement()
        self._buffer = np.zeros(0, dtype=np.float32)
        self._start = 0  # stream sample of the buffer's first sample (a multiple of FRAME_SAMPLES)
        self._received = 0
        self._stepped_at = 0  # `_received` at the last step
        self._skipped = 0
        self._committed: deque[dict] = deque(maxlen=100)  # recent committed words (the prompt is read from them)
        self._text = ""
        self._sentence_end = 0.0  # end of the last committed word that closes a sentence
        self._finished = False
        self._forced_words: list[dict] = []  # committed by a cut before the step that reports them
        self._forced_events: list[dict] = []

    # -- set-up --
    def _load(self, model_or_pipeline: Any, feature_extractor: Any, tokenizer: Any) -> None:
        model = getattr(model_or_pipeline, "model", None)
        if model is not None and hasattr(model_or_pipeline, "feature_extractor"):  # a pipeline
            feature_extractor = feature_extractor or model_or_pipeline.feature_extractor
            tokenizer = tokenizer or model_or_pipeline.tokenizer
        else:
            model = model_or_pipeline
        if not hasattr(model, "encode") or not hasattr(model, "tag_pooled"):
            raise ValueError(
                f"LiveTranscriber needs a whisper-at pipeline or a WhisperForAudioTaggingAndASR, got "
                f"{type(model_or_pipeline).__name__}."
            )
        if feature_extractor is None or tokenizer is None:
            from transformers import WhisperProcessor

            processor = WhisperProcessor.from_pretrained(model.name_or_path)
            feature_extractor = feature_extractor or processor.feature_extractor
            tokenizer = tokenizer or processor.tokenizer
        if getattr(feature_extractor, "sampling_rate", SAMPLING_RATE) != SAMPLING_RATE:
            raise ValueError(f"the feature extractor reads {feature_extractor.sampling_rate} Hz; live needs 16 kHz.")
        self.model, self.feature_extractor, self.tokenizer = model, feature_extractor, tokenizer
        self.multilingual = bool(getattr(model.generation_config, "is_multilingual", False))
        known = tokenizer.get_vocab()
        self._no_speech_id = next((known[t] for t in ("<|nospeech|>", "<|nocaptions|>") if t in known), None)
        if not self.multilingual and self.language not in (None, "en", "english", "English", "<|en|>"):
            raise ValueError(f"language {self.language!r}: this checkpoint is English-only.")

    def _names_for_labels(self, include: Any, exclude: Any, label_language: str) -> None:
        names = model_label_names(self.model)
        self.label_names = names
        self.names = names.get(label_language) if label_language in names.languages else None
        if self.names is None:
            raise ValueError(f"label_language {label_language!r}: this checkpoint has names in {names.languages}.")
        known = {name for language in names.languages for name in names.get(language)}
        include = None if include is None else check_labels("include_labels", include, known)
        exclude = None if exclude is None else check_labels("exclude_labels", exclude, known)
        by_language = {language: names.get(language) for language in names.languages}
        self.candidates = candidate_ids(len(names), include, exclude, by_language)

    # -- public --
    @property
    def audio_time(self) -> float:
        """Seconds of audio received."""
        return self._received / SAMPLING_RATE

    def push(self, samples: np.ndarray) -> list[dict]:
        """Adds `samples` (float32, 16 kHz mono, any length); runs one step if `step_s` of new audio has arrived.

        Returns the updates that became ready (none or one: audio that came while earlier steps ran is read by one
        step on the newest buffer). Raises `ValueError` for samples that are not finite 1-D audio.
        """
        if self._finished:
            raise RuntimeError("this stream has finished; start a new LiveTranscriber.")
        samples = np.asarray(samples)
        if samples.ndim != 1 or samples.dtype.kind != "f":
            raise ValueError(
                f"push takes 1-D float samples (16 kHz mono), got {samples.dtype} of shape {samples.shape}"
                + ("; mix the channels to mono first." if samples.ndim == 2 else ".")
            )
        if samples.size and not np.isfinite(samples).all():
            raise ValueError(f"pushed audio holds {int((~np.isfinite(samples)).sum())} NaN/Inf samples.")
        self._buffer = np.concatenate([self._buffer, samples.astype(np.float32, copy=False)])
        self._received += samples.size
        self._drop_overflow()
        new = self._received - self._stepped_at
        if new < self.step_s * SAMPLING_RATE:
            return []
        self._skipped += max(int(new // (self.step_s * SAMPLING_RATE)) - 1, 0)
        return [self._step(final=False)]

    def finish(self) -> list[dict]:
        """Decodes what is left, commits the tentative words, closes the events; returns the last update."""
        if self._finished:
            return []
        update = self._step(final=True)
        self._finished = True
        return [update]

    # -- one step --
    def _step(self, final: bool) -> dict:
        began = self.clock()
        self._stepped_at = self._received
        offset_s = self._start / SAMPLING_RATE
        new_words, events = self._forced_words, self._forced_events
        self._forced_words, self._forced_events = [], []
        tags: list[dict] = []
        tags_window: list[float] | None = None
        if self._buffer.size:
            processed = self.feature_extractor(
                self._buffer, sampling_rate=SAMPLING_RATE, return_tensors="pt", return_attention_mask=True
            )
            features = processed.input_features.to(self.model.device, self.model.dtype)
            with torch.inference_mode():
                encoded = self.model.encode(features)  # the step's one encoder pass: head and decoder read it
                tags, tags_window, step_events = self._tag(encoded.pooled_hidden_states, final)
                hypothesis = self._decode(features, processed.attention_mask, encoded, offset_s)
            if hypothesis is not None:  # a rejected one (no speech, a loop) says nothing about the tentative words
                stale_before = self._stale_before()
                new_words += self.agreement.insert(hypothesis)
                if stale_before is not None:
                    new_words += self.agreement.commit_all(before_s=stale_before)
            events += step_events
        elif final:
            events += self.curve.add(np.zeros((0, len(self.names)), dtype=np.float32), final=True)
        if final:
            new_words += self.agreement.commit_all()
            events += self.curve.segmenter.finish(self.audio_time)
        self._note_committed(new_words)
        if final:
            new_words += self._flush_rest()
        else:
            self._trim()
        ongoing = [] if final else [event for event in self.curve.segmenter.ongoing() if event["end"] is None]
        update = {
            "audio_time": round(self.audio_time, 2),
            "new_words": new_words,
            "committed_text": self._text,
            "tentative_text": " ".join(word["word"] for word in self.agreement.tentative),
            "tags": tags,
            "tags_window": tags_window,
            "events": name_events(events, self.names) + name_events(ongoing, self.names),
            "compute_s": round(self.clock() - began, 3),
            "skipped_steps": self._skipped,
        }
        self._skipped = 0
        return update

    def _stale_before(self) -> float | None:
        """Where tentative words count as stale (see `max_tentative_s`): before `max_tentative_s` ahead of the
        newest audio, and within what the previous hypothesis held (so every such word was heard twice)."""
        if self.max_tentative_s is None or not self.agreement.tentative:
            return None
        return min(self.audio_time - self.max_tentative_s, self.agreement.tentative[-1]["end"])

    def _tag(self, pooled: torch.Tensor, final: bool) -> tuple[list[dict], list[float] | None, list[dict]]:
        """Tags of the newest complete frames and the curve points the buffer completes, from one head call.

        `pooled`: `(1, num_layers, 75, d)` of the buffer (its frame 0 is stream frame `self._start // FRAME_SAMPLES`).
        """
        base = self._start // FRAME_SAMPLES
        length = self._buffer.size
        frames = -(-length // FRAME_SAMPLES) if final else length // FRAME_SAMPLES  # frames of the buffer to read
        total = base + frames if final else None
        points = self.curve.ready_points(base + frames, total)
        starts = [self.curve.window_start(point, total) - base for point in points]
        events: list[dict] = []
        if len(points):
            windows = torch.stack([pooled[0, :, start : start + self.window] for start in starts])
            probs = torch.sigmoid(self.model.tag_pooled(windows, EVENT_WINDOW_SECONDS)[:, 0].float()).cpu().numpy()
            events = self.curve.add(probs, final=final)
        elif final:
            events = self.curve.add(np.zeros((0, len(self.names)), dtype=np.float32), final=True)
        # the tags: one steadier window (`tags_window_s`) over the newest complete frames, from the same pass
        span = min(self.tags_frames, max(frames, 1))
        tail = max(frames - span, 0)
        newest = torch.sigmoid(self.model.tag_pooled(pooled[:, :, tail : tail + span], span * EVENT_HOP_SECONDS)[:, 0])
        newest = newest.float().cpu().numpy()
        ids = top_tags(newest, self.candidates, self.top_k, self.tag_threshold)[0]
        tags = [{"label": self.names[i], "score": round(float(newest[0, i]), 4)} for i in ids]
        window_s = [round((base + tail) * EVENT_HOP_SECONDS, 2), round((base + tail + span) * EVENT_HOP_SECONDS, 2)]
        return tags, window_s, events

    def _decode(
        self, features: torch.Tensor, attention_mask: torch.Tensor, encoded: Any, offset_s: float
    ) -> list[dict] | None:
        """Whisper's hypothesis of the buffer, as words with times on the stream's clock (`offset_s` = the buffer's
        start), decoded from the step's encoder pass; `None` if Whisper's own checks reject it (no speech, a loop)."""
        kwargs: dict[str, Any] = {
            "encoder_pass_cache": EncoderPassCache(features, encoded),
            "return_dict_in_generate": True,
            "num_beams": self.num_beams,
            # a bound on hallucinated loops over noise (speech runs at about 3 tokens a second)
            "max_new_tokens": int(TOKENS_PER_SECOND * features_seconds(attention_mask)) + 8,
        }
        if self.multilingual:
            kwargs["task"] = self.task
            if self.language is not None:
                kwargs["language"] = self.language
        prompt = self._prompt()
        if prompt:
            kwargs["prompt_ids"] = self.tokenizer.get_prompt_ids(prompt, return_tensors="pt").to(features.device)
        generated = self.model.generate(features, **kwargs)
        sequences = generated["sequences"]
        sequence = sequences[0].tolist()
        generation_config = self.model.generation_config
        start_token, end_of_text = generation_config.decoder_start_token_id, generation_config.eos_token_id
        first = sequence.index(start_token) if start_token in sequence else -1  # the prompt comes before it
        positions: list[int] = []  # the text tokens: a contiguous run of ids below <|endoftext|>
        for index in range(first + 1, len(sequence)):
            if sequence[index] < end_of_text:
                positions.append(index)
            elif positions:
                break
        if not positions:
            return []
        attentions, hidden = alignment_cross_attentions(self.model, sequences, encoded.last_hidden_state)
        if looks_like_no_speech(self.model, sequences[0], hidden[0], positions, self._no_speech_id):
            return None
        # the DTW also reads the two forced tokens before the text: its path starts at time 0 on its first row, so
        # the row that predicts the first text token (the one before it) gives that token's real start; left out (as
        # `generate` does), every hypothesis' first word would start at the buffer's start
        first_row = max(positions[0] - 2, 0)
        times = token_end_times(self.model, sequences, attentions, int(attention_mask.sum()), first_row)[0].tolist()
        tokens = [sequence[i] for i in positions]
        starts, ends = [times[i - 1] for i in positions], [times[i] for i in positions]
        return words_from_tokens(tokens, starts, ends, self.tokenizer, offset_s)

    def _flush_rest(self) -> list[dict]:
        """At the end, while the last decode stopped more than `FLUSH_MIN_S` before the buffer's end (a 30 s window
        is often decoded only in part): cuts the buffer at the committed end and decodes the rest (at most
        `FLUSH_PASSES` more passes, their words committed as they are). Returns the words, noted as committed."""
        words: list[dict] = []
        for _ in range(FLUSH_PASSES):
            start_s, committed_end = self._start / SAMPLING_RATE, self.agreement.committed_end
            end_s = start_s + self._buffer.size / SAMPLING_RATE
            if committed_end <= start_s or end_s - committed_end < FLUSH_MIN_S:
                break
            self._cut_at(committed_end)
            processed = self.feature_extractor(
                self._buffer, sampling_rate=SAMPLING_RATE, return_tensors="pt", return_attention_mask=True
            )
            features = processed.input_features.to(self.model.device, self.model.dtype)
            with torch.inference_mode():
                encoded = self.model.encode(features)
                hypothesis = self._decode(features, processed.attention_mask, encoded, self._start / SAMPLING_RATE)
            found = self.agreement.insert(hypothesis or []) + self.agreement.commit_all()
            if not found:
                break
            self._note_committed(found)
            words += found
        return words

    # -- bookkeeping --
    def _note_committed(self, words: list[dict]) -> None:
        for word in words:
            self._committed.append(word)
            if _SENTENCE_END.search(word["word"]):
                self._sentence_end = word["end"]
        if words:
            text = " ".join(word["word"] for word in words)
            self._text = (f"{self._text} {text}" if self._text else text)[-TEXT_CHARS:]

    def _prompt(self) -> str:
        """The committed text before the buffer (its last `PROMPT_CHARS` characters): the committed words whose
        midpoint lies before the buffer's start. The others are heard again in the buffer, and dropped from its
        hypothesis by the same midpoint rule ([`LocalAgreement.inside_committed`]): each committed word is either
        prompt or audio, never both and never neither."""
        start_s = self._start / SAMPLING_RATE
        before = (word["word"] for word in self._committed if _mid(word) < start_s)
        return " ".join(before)[-PROMPT_CHARS:].strip()

    def _trim(self) -> None:
        """Cuts the buffer at the last committed sentence end once it is longer than `trim_s` (else at the last
        committed word); with nothing heard (no tentative words), to its last `step_s + EVENT_WINDOW_SECONDS`."""
        start_s = self._start / SAMPLING_RATE
        end_s = start_s + self._buffer.size / SAMPLING_RATE
        cut_s = start_s
        if end_s - start_s > self.trim_s:
            cut_s = self._sentence_end if self._sentence_end > start_s else self.agreement.committed_end
        if not self.agreement.tentative:
            cut_s = max(cut_s, self.agreement.committed_end, end_s - self.step_s - EVENT_WINDOW_SECONDS)
        self._cut_at(cut_s)

    def _cut_at(self, cut_s: float) -> None:
        """Moves the buffer's start to `cut_s`, rounded down to the stream's frame grid and kept where the next
        event curve points read."""
        frame = min(int(cut_s * SAMPLING_RATE) // FRAME_SAMPLES, self.curve.window_start(self.curve.next_point))
        cut = frame * FRAME_SAMPLES - self._start
        if cut > 0:
            self._buffer = self._buffer[cut:].copy()  # a copy: the old buffer's memory is freed
            self._start += cut

    def _drop_overflow(self) -> None:
        """Keeps the buffer within `max_buffer_s` when audio comes faster than steps: the oldest audio goes, its
        tentative words that may not be heard again are committed as they are (those whose
        midpoint lies before the cut + `CUT_MARGIN_S`: a word across the cut is committed, not lost with its audio;
        the later ones are carried, tentative), and curve points whose audio is gone count as silent."""
        excess = self._buffer.size - int(self.max_buffer_s * SAMPLING_RATE)
        if excess <= 0:
            return
        new_start = self._start + -(-excess // FRAME_SAMPLES) * FRAME_SAMPLES
        # noted as committed by the step that reports them (with its other new words), once
        self._forced_words += self.agreement.commit_all(before_s=new_start / SAMPLING_RATE + CUT_MARGIN_S)
        first_frame = new_start // FRAME_SAMPLES
        lost = 0
        while self.curve.window_start(self.curve.next_point + lost) < first_frame:
            lost += 1
        if lost:
            self._forced_events += self.curve.add(np.zeros((lost, len(self.names)), dtype=np.float32))
        self._buffer = self._buffer[new_start - self._start :].copy()
        self._start = new_start


class LiveStreamStalled(TimeoutError):
    """The source gave no audio for `stall_timeout_s` seconds."""


_END = object()


def live_updates(
    chunks: Iterable[np.ndarray],
    model_or_pipeline: Any = None,
    *,
    stream: LiveTranscriber | None = None,
    coalesce: bool = False,
    stall_timeout_s: float | None = None,
    **options: Any,
) -> Iterator[dict]:
    """The updates of a stream of `chunks` (float32 16 kHz mono), the last one from `finish()`.

    Args:
        chunks: the audio, in pieces of any size, e.g. from a microphone or a decoder.
        model_or_pipeline / options: make the [`LiveTranscriber`] (or pass `stream`).
        coalesce: read `chunks` on a thread and give each step all audio that arrived while the previous one ran
            (a live source: steps are skipped instead of queued, so lag stays bounded). Without it each chunk is
            pushed in turn (a file, a test: nothing is skipped).
        stall_timeout_s: with `coalesce`, raise [`LiveStreamStalled`] when no chunk came for this long.

    A source that raises (a broken stream) or stalls still gets its last update (everything committed, events
    closed) before the error propagates.
    """
    if stream is None:
        if model_or_pipeline is None:
            raise ValueError("live_updates needs model_or_pipeline or stream.")
        stream = LiveTranscriber(model_or_pipeline, **options)
    elif options or model_or_pipeline is not None:
        raise ValueError("pass either stream or model_or_pipeline with options, not both.")
    if stall_timeout_s is not None:
        stall_timeout_s = check_number("stall_timeout_s", stall_timeout_s, 0.0, strict_minimum=True)
    source = _coalesced(chunks, stall_timeout_s) if coalesce else iter(chunks)
    try:
        for chunk in source:
            yield from stream.push(chunk)
    except Exception:
        yield from stream.finish()
        raise
    yield from stream.finish()


def _coalesced(chunks: Iterable[np.ndarray], stall_timeout_s: float | None) -> Iterator[np.ndarray]:
    """`chunks` read on a daemon thread; each item is everything that arrived since the last one was taken."""
    pending: queue.Queue = queue.Queue()

    def read() -> None:
        try:
            for chunk in chunks:
                pending.put(np.asarray(chunk))
        except BaseException as error:  # noqa: BLE001  (handed to the consumer, which re-raises it)
            pending.put(error)
        pending.put(_END)

    threading.Thread(target=read, name="live-source", daemon=True).start()
    while True:
        try:
            item = pending.get(timeout=stall_timeout_s)
        except queue.Empty:
            raise LiveStreamStalled(f"no audio for {stall_timeout_s:g} s: the stream stalled.") from None
        pieces, done = [], False
        while True:
            if item is _END:
                done = True
                break
            if isinstance(item, BaseException):
                if pieces:
                    yield np.concatenate(pieces)
                raise item
            pieces.append(item)
            try:
                item = pending.get_nowait()
            except queue.Empty:
                break
        if pieces:
            yield np.concatenate(pieces)
        if done:
            return


__all__ = [
    "CUT_MARGIN_S",
    "TAGS_WINDOW_SECONDS",
    "FRAME_SAMPLES",
    "SAMPLING_RATE",
    "LiveEventCurve",
    "LiveStreamStalled",
    "LiveTranscriber",
    "LocalAgreement",
    "alignment_cross_attentions",
    "live_updates",
    "looks_like_no_speech",
    "normalize_for_wer",
    "token_end_times",
    "words_from_tokens",
]
