"""`whisper-at-demo`: the browser demo (Gradio). Live: the microphone streams to captions, the top tags as bars and
the events on a timeline. File: an upload gives the offline result (transcript, events, the tag heat map).

    whisper-at-demo --model DIR_OR_VARIANT [--host 127.0.0.1] [--port 7860]
    python app.py                     # the same app as a Hugging Face Space ($WHISPER_AT_MODEL picks the model)

Needs `pip install "whisper-at-hf[demo]"` (Gradio, matplotlib). Each browser session gets its own
[`LiveTranscriber`]; they share one pipeline (the model keeps no per-stream state).
"""

from __future__ import annotations

import argparse
import html
import importlib
import queue
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
from whisper_at_hf_cli.demo import build_parser

from .audio import resample, to_mono
from .labels import model_label_names
from .live import LiveTranscriber, live_updates
from .option_rules import LIVE_STEP_SECONDS
from .plotting import plot_tags
from .release_resolver import resolve_model

EVENT_COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7"]
TIMELINE_SECONDS = 30.0  # the live timeline shows the last 30 s
TIMELINE_ROWS = 8  # ... for the labels with the strongest events in it
SESSION_TTL_S = 600.0  # a live session no chunk has reached for this long is closed (a tab that went silent)


def load_pipeline(model: str | None, device: str = "cpu") -> Any:
    """`pipeline("whisper-at")` for a variant name, a checkpoint folder or a Hub id (as the CLI's `--model`)."""
    from transformers import pipeline


    return pipeline("whisper-at", model=resolve_model(model), device=device)


def as_16k_mono(sampling_rate: int, samples: np.ndarray) -> np.ndarray:
    """A browser chunk (`int16` or float, mono or `(n, channels)`) as float32 16 kHz mono."""
    samples = np.asarray(samples)
    if samples.dtype.kind == "i":
        samples = samples.astype(np.float32) / float(np.iinfo(samples.dtype).max + 1)
    samples = to_mono(samples.astype(np.float32, copy=False), "microphone", channels_first=False)
    return resample(samples, int(sampling_rate), 16000).astype(np.float32, copy=False)


def captions_html(update: dict | None) -> str:
    """Committed text, then the tentative tail dimmed."""
    if update is None:
        return "<div id='live-captions'><i>Press record and speak.</i></div>"
    committed = html.escape(update["committed_text"][-600:])
    tentative = html.escape(update["tentative_text"])
    return (f"<div id='live-captions' style='font-size:1.3em;line-height:1.5'>{committed} "
            f"<span style='opacity:0.45'>{tentative}</span></div>")


def timeline_html(events: dict[tuple, dict], now: float) -> str:
    """The events of the last `TIMELINE_SECONDS` as bars on one row per label (an ongoing one runs to `now`), for the
    `TIMELINE_ROWS` labels with the strongest events there."""
    start = max(now - TIMELINE_SECONDS, 0.0)
    strongest: dict[str, float] = {}
    for event in events.values():
        if event["end"] is None or event["end"] >= start:
            strongest[event["label"]] = max(strongest.get(event["label"], 0.0), event["score"])
    labels = sorted(strongest, key=lambda label: (-strongest[label], label))[:TIMELINE_ROWS]
    rows = []
    for row, label in enumerate(labels):
        bars = []
        for event in events.values():
            end = now if event["end"] is None else event["end"]
            if event["label"] != label or end < start:
                continue
            left = 100 * (max(event["start"], start) - start) / TIMELINE_SECONDS
            width = max(100 * (end - max(event["start"], start)) / TIMELINE_SECONDS, 0.5)
            colour = EVENT_COLOURS[row % len(EVENT_COLOURS)]
            bars.append(f"<div style='position:absolute;left:{left:.1f}%;width:{width:.1f}%;top:2px;bottom:2px;"
                        f"background:{colour};border-radius:3px'></div>")
        rows.append(f"<div style='display:flex;align-items:center;height:22px'><div style='width:9em;font-size:12px'>"
                    f"{html.escape(label)}</div><div style='position:relative;flex:1;height:100%;"
                    f"background:#f3f3f3'>{''.join(bars)}</div></div>")
    axis = f"<div style='font-size:11px;color:#777'>{start:.0f} s … {now:.0f} s</div>"
    return f"<div id='live-events'>{''.join(rows) or '<i>no events yet</i>'}{axis}</div>"


class LiveSession:
    """One browser session's stream. Chunks are queued by the (quick) Gradio callback; a thread runs them through
    `live_updates(..., coalesce=True)`, so a slow machine skips steps instead of queueing the browser's chunks
    (bounded lag), and the page always shows the newest update."""

    def __init__(self, pipe: Any, step_s: float):
        self.stream = LiveTranscriber(pipe, step_s=step_s)
        self.update: dict | None = None
        self.events: dict[tuple, dict] = {}  # (label, start) -> event; the ongoing one is replaced when it ends
        self.error: str | None = None
        self._inbox: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._closed = False
        self.thread = threading.Thread(target=self._run, name="live-session", daemon=True)
        self.thread.start()

    def push(self, sampling_rate: int, samples: np.ndarray) -> None:
        if not self._closed:
            self._inbox.put(as_16k_mono(sampling_rate, samples))

    def close(self) -> None:
        """Ends the stream: its thread finishes (the last update commits everything) and exits. Idempotent."""
        if not self._closed:
            self._closed = True
            self._inbox.put(None)

    def _chunks(self):
        while (chunk := self._inbox.get()) is not None:
            yield chunk

    def _run(self) -> None:
        try:
            for update in live_updates(self._chunks(), stream=self.stream, coalesce=True):
                with self._lock:
                    self.update = update
                    for event in update["events"]:
                        self.events[(event["label"], event["start"])] = event
                    horizon = update["audio_time"] - TIMELINE_SECONDS
                    self.events = {k: e for k, e in self.events.items() if e["end"] is None or e["end"] >= horizon}
        except Exception as error:  # noqa: BLE001  (shown on the page instead of a dead stream)
            self.error = f"{type(error).__name__}: {error}"

    def outputs(self) -> tuple[str, dict, str]:
        with self._lock:
            update, events = self.update, dict(self.events)
        tags = {tag["label"]: tag["score"] for tag in update["tags"]} if update else {}
        now = update["audio_time"] if update else 0.0
        captions = captions_html(update)
        if self.error:
            captions += f"<div style='color:#b00'>{html.escape(self.error)}</div>"
        return captions, tags, timeline_html(events, now)


def close_session(session: Any) -> None:
    """`gr.State`'s delete callback: Gradio deletes a session's state when its tab closes or reloads (or after
    `SESSION_TTL_S` without an update), and a stream still recording then has its thread ended here."""
    if isinstance(session, LiveSession):
        session.close()


def offline_result(pipe: Any, path: str | None) -> tuple[str, str, str | None]:
    """Transcript, events (as text) and the heat map PNG of an uploaded file."""
    if not path:
        return "", "", None
    result = pipe(path, return_timestamps=True, return_events=True, return_tag_logits=True)
    events = "\n".join(f"{e['start']:7.1f}–{e['end']:7.1f} s  {e['label']}  {e['score']:.2f}" for e in result["events"])
    names = model_label_names(pipe.model).get(result.get("language") or "en")
    png = Path(tempfile.mkdtemp(prefix="whisper-at-demo-")) / "tags.png"
    plot_tags(result, names, png, title=Path(path).name)
    return result["text"].strip(), events or "no events", str(png)


def build_demo(pipe: Any, step_s: float = LIVE_STEP_SECONDS) -> Any:
    """The Gradio app on `pipe`."""
    import gradio as gr

    def stream(chunk: tuple[int, np.ndarray] | None, session: LiveSession | None):
        session = session or LiveSession(pipe, step_s)
        if chunk is not None:
            session.push(*chunk)
        return (*session.outputs(), session)

    def stop(session: LiveSession | None):
        if session is not None:
            session.close()
        return None  # the next recording starts a new stream

    with gr.Blocks(title="Whisper-AT live") as demo:
        gr.Markdown("# Whisper-AT: captions and sound tags, live")
        with gr.Tab("Live"):
            microphone = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="Microphone")
            captions = gr.HTML(captions_html(None), label="Captions")
            tags = gr.Label(num_top_classes=5, label="Tags now", elem_id="live-tags")
            timeline = gr.HTML(timeline_html({}, 0.0), label="Events")
            # a tab closed while recording sends no stop: Gradio's session end deletes the state, which closes it
            session = gr.State(None, time_to_live=SESSION_TTL_S, delete_callback=close_session)
            microphone.stream(stream, [microphone, session], [captions, tags, timeline, session], stream_every=0.5,
                              show_progress="hidden")
            microphone.stop_recording(stop, session, session)
        with gr.Tab("File"):
            upload = gr.Audio(sources=["upload"], type="filepath", label="Audio file")
            text = gr.Textbox(label="Transcript")
            events = gr.Textbox(label="Events", lines=6)
            heat_map = gr.Image(label="Tags over time")
            upload.change(lambda path: offline_result(pipe, path), upload, [text, events, heat_map])
    return demo


def main(argv: list[str] | None = None) -> int:
    """`whisper-at-demo ARGS` from Python (the console script parses in `whisper_at_hf_cli` first, then calls
    [`run`])."""
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Serves the demo as the parsed `args` (`whisper_at_hf_cli.demo.build_parser`) say, until stopped."""
    try:
        importlib.import_module("gradio")  # an optional dependency: say how to get it rather than fail later
    except ImportError:
        build_parser().error('the demo needs Gradio: pip install "whisper-at-hf[demo]"')
    demo = build_demo(load_pipeline(args.model, args.device), step_s=args.step)
    demo.queue().launch(server_name=args.host, server_port=args.port, share=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
