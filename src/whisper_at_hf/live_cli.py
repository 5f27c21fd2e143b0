"""`whisper-at --live [SOURCE]`: live captions and sound tags from a microphone, a stream, stdin or a file.

    whisper-at --live                                   # the default microphone (through ffmpeg)
    whisper-at --live rtsp://camera/stream -o captions  # a URL ffmpeg opens; writes captions/NAME.{srt,vtt,jsonl}
    whisper-at --live talk.mp3                          # a file, played at real-time pace
    ffmpeg -re -i talk.mp3 -f wav - | whisper-at --live - --output-format jsonl

ffmpeg decodes every source to 16 kHz mono float32 (any rate, any channels); it runs in its own session, so Ctrl-C
stops this program, which finishes the stream (everything committed, events closed, files complete) and exits 0.
End of stream exits 0; a source that cannot be opened, breaks (ffmpeg fails or is killed) or stalls for
`--stall-timeout` seconds ends with a message naming the problem, the files written so far complete, exit 1.
Option values, the output folder and ffmpeg are checked before the model loads (exit 2).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from whisper_at_hf_cli.live import build_parser

from .file_utils import atomic_write, check_output_dir
from .live import LiveStreamStalled, LiveTranscriber, live_updates
from .cli_options import check_device
from .options import check_language
from .model_sources import resolve_checked_model
from .tags import is_speech_class

SAMPLE_BYTES = 4  # float32
READ_BYTES = 1600 * SAMPLE_BYTES  # 0.1 s: what one read from ffmpeg asks for at most
MAX_LINE_CHARS, MAX_CUE_SECONDS, MAX_CUE_GAP = 42, 7.0, 1.5  # subtitle conventions: 2 x 42 characters, 7 s
DIM, RESET, CLEAR_LINE = "\033[2m", "\033[0m", "\r\033[K"


class StreamBroken(RuntimeError):
    """The source ended with an error (ffmpeg failed, was killed, or could not open it)."""


def ffmpeg_command(source: str | None, input_format: str | None) -> list[str]:
    """The ffmpeg command that writes `source` to stdout as 16 kHz mono float32. Raises `ValueError` for a source
    that cannot be one (a missing file, a microphone on a platform without a default)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ValueError("ffmpeg is not installed (it decodes every live source): apt-get install ffmpeg, "
                         "brew install ffmpeg, or https://ffmpeg.org/download.html")
    head = [ffmpeg, "-hide_banner", "-loglevel", "error"]
    if source is None:  # the default microphone
        if input_format is None:
            input_format = {"linux": "pulse", "darwin": "avfoundation"}.get(sys.platform)
        if input_format is None:
            raise ValueError("no default microphone input here: name one, e.g. --input-format dshow "
                             '"audio=Microphone (…)" (ffmpeg -list_devices true -f dshow -i dummy lists them)')
        device = {"pulse": "default", "alsa": "default", "avfoundation": ":0"}.get(input_format, "default")
        inputs = ["-nostdin", "-f", input_format, "-i", device]
    elif source == "-":
        inputs = ["-i", "pipe:0"]
    elif input_format is not None:
        inputs = ["-nostdin", "-f", input_format, "-i", source]
    elif "://" in source:
        inputs = ["-nostdin", "-i", source]
    elif os.path.isfile(source):
        inputs = ["-nostdin", "-re", "-i", source]  # a file plays at real-time pace, like a stream
    else:
        raise ValueError(f"{source}: no such file (and not a URL)")
    return [*head, *inputs, "-vn", "-ac", "1", "-ar", "16000", "-f", "f32le", "pipe:1"]


# ----- the source ------------------------------------------------------------------------------------------------------
class FfmpegSource:
    """ffmpeg's decoded audio as float32 chunks; raises [`StreamBroken`] when ffmpeg ends with an error."""

    def __init__(self, command: list[str], label: str):
        self.label = label
        stdin = sys.stdin.buffer if "pipe:0" in command else subprocess.DEVNULL
        # its own session: Ctrl-C reaches only us, and we end ffmpeg after finishing the stream
        self.process = subprocess.Popen(
            command, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
        )
        self.errors: collections.deque[str] = collections.deque(maxlen=5)
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    def _drain_stderr(self) -> None:
        for line in self.process.stderr:
            text = line.decode("utf-8", "replace").strip()
            if text:
                self.errors.append(text)

    def __iter__(self) -> Iterator[np.ndarray]:
        rest = b""
        received = 0
        while True:
            data = self.process.stdout.read1(READ_BYTES)
            if not data:
                break
            data = rest + data
            usable = len(data) // SAMPLE_BYTES * SAMPLE_BYTES
            rest = data[usable:]
            received += usable
            if usable:
                yield np.frombuffer(data[:usable], dtype=np.float32).copy()
        code = self.process.wait()
        self.process.stderr.close()
        if code != 0:
            why = self.errors[-1] if self.errors else (f"killed by signal {-code}" if code < 0 else f"exit code {code}")
            what = "cannot read" if received == 0 else "the stream broke"
            raise StreamBroken(f"{self.label}: {what}: ffmpeg: {why}")
        if received == 0:
            raise StreamBroken(f"{self.label}: the stream holds no audio")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


# ----- outputs ---------------------------------------------------------------------------------------------------------
def _two_lines(text: str) -> str:
    """A cue's text on at most two lines of about `MAX_LINE_CHARS`, broken at the space nearest the middle."""
    if len(text) <= MAX_LINE_CHARS or " " not in text:
        return text
    middle = len(text) // 2
    spaces = [i for i, char in enumerate(text) if char == " "]
    cut = min(spaces, key=lambda i: abs(i - middle))
    return f"{text[:cut]}\\N{text[cut + 1:]}"  # pysubs2's line break


class CaptionFiles:
    """NAME.srt / NAME.vtt (committed words in cues of at most 2 x 42 characters and 7 s, cut at sentence ends and
    pauses, plus `[Sound]` cues for finished non-speech events), each rewritten atomically whenever a cue closes, and
    NAME.jsonl (one update a line, appended and flushed: a follower reads whole lines)."""

    def __init__(self, folder: str, name: str, english_names: list[str] | None):
        import pysubs2

        self.pysubs2 = pysubs2
        self.base = Path(folder) / name
        self.english = english_names
        self.cues: list[tuple[float, float, str]] = []
        self.open: list[dict] = []  # the words of the cue being built
        self.jsonl = open(self.base.with_suffix(".jsonl"), "w", encoding="utf-8")
        self._write()

    def add(self, update: dict) -> None:
        self.jsonl.write(json.dumps(update, ensure_ascii=False) + "\n")
        self.jsonl.flush()
        closed = False
        for word in update["new_words"]:
            if self.open and self._closes_before(word):
                closed |= self._close()
            self.open.append(word)
            if word["word"].rstrip("\"')]").endswith((".", "?", "!")):
                closed |= self._close()
        for event in update["events"]:
            speech = self.english is not None and is_speech_class(event["label_id"], self.english)
            if event["end"] is not None and not speech:
                self.cues.append((event["start"], event["end"], f"[{event['label']}]"))
                closed = True
        if closed:
            self._write()

    def finish(self) -> None:
        self._close()
        self._write()
        self.jsonl.close()

    def _closes_before(self, word: dict) -> bool:
        text = " ".join(w["word"] for w in [*self.open, word])
        return (
            len(text) > 2 * MAX_LINE_CHARS
            or word["end"] - self.open[0]["start"] > MAX_CUE_SECONDS
            or word["start"] - self.open[-1]["end"] > MAX_CUE_GAP
        )

    def _close(self) -> bool:
        if not self.open:
            return False
        text = " ".join(w["word"] for w in self.open)
        self.cues.append((self.open[0]["start"], max(self.open[-1]["end"], self.open[0]["start"] + 0.1), text))
        self.open = []
        return True

    def _write(self) -> None:
        subtitles = self.pysubs2.SSAFile()
        for start, end, text in sorted(self.cues):
            subtitles.events.append(self.pysubs2.SSAEvent(start=int(start * 1000), end=int(end * 1000),
                                                          text=_two_lines(text)))
        for suffix in ("srt", "vtt"):
            atomic_write(self.base.with_suffix(f".{suffix}"), subtitles.to_string(suffix))


class TerminalView:
    """Committed text as it is committed; on a terminal also a live line: the tentative tail dimmed and the tags."""

    def __init__(self, stream: Any = sys.stdout):
        self.stream = stream
        self.tty = stream.isatty()
        self.line = ""  # committed words of the current (unfinished) sentence

    def show(self, update: dict) -> None:
        for word in update["new_words"]:
            self.line = f"{self.line} {word['word']}".strip()
            if word["word"].rstrip("\"')]").endswith((".", "?", "!")):
                self.stream.write((CLEAR_LINE if self.tty else "") + self.line + "\n")
                self.line = ""
        if self.tty:
            tags = " · ".join(f"{tag['label']} {tag['score']:.2f}" for tag in update["tags"][:3])
            width = shutil.get_terminal_size().columns - 1
            tail = update["tentative_text"]
            room = max(width - len(tags) - 4, 0)
            shown = f"{self.line} {tail}".strip()[-room:] if room else ""
            committed = max(len(shown) - len(tail), 0)
            self.stream.write(
                f"{CLEAR_LINE}{shown[:committed]}{DIM}{shown[committed:]}{RESET}  [{tags}]"[: width + len(DIM + RESET)]
            )
        self.stream.flush()

    def finish(self) -> None:
        if self.line:
            self.stream.write((CLEAR_LINE if self.tty else "") + self.line + "\n")
        elif self.tty:
            self.stream.write(CLEAR_LINE)
        self.stream.flush()


# ----- main ------------------------------------------------------------------------------------------------------------
def _problem(args: argparse.Namespace) -> str | None:
    """Why the options cannot work (before the model loads), or `None`."""
    if args.language is not None:
        try:
            check_language("--language", args.language)
        except ValueError as error:
            return str(error)
    if args.output_dir is not None:
        problem = check_output_dir(args.output_dir)
        if problem:
            return problem
    if args.name is not None and (not args.name or os.sep in args.name or args.name in (".", "..")):
        return f"--name {args.name!r}: a file name without folders"
    try:
        check_device(args.device, "--device")
    except ValueError as error:
        return str(error)
    return None


def main(argv: list[str] | None = None) -> int:
    """`whisper-at --live ARGS` from Python (the console script parses in `whisper_at_hf_cli` first, then calls
    [`run`])."""
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Captions and tags the source of the parsed `args` (`whisper_at_hf_cli.live.build_parser`) until it ends."""
    parser = build_parser()  # for its usage errors (exit 2)
    problem = _problem(args)
    try:
        command = ffmpeg_command(args.source, args.input_format)
    except ValueError as error:
        problem = problem or str(error)
    if problem:
        parser.error(problem)  # exit 2, before the model loads

    stream = _make_stream(args)
    if stream is None:
        return 2
    label = "microphone" if args.source is None else ("stdin" if args.source == "-" else args.source)
    name = args.name or (Path(args.source).stem if args.source and os.path.isfile(args.source) else "live")
    files = None
    if args.output_dir is not None:
        english = stream.label_names.get("en") if "en" in stream.label_names.languages else None
        files = CaptionFiles(args.output_dir, name, english)
    view = TerminalView() if args.output_format == "text" else None
    source = FfmpegSource(command, label)
    if not args.quiet:
        print(f"whisper-at: listening to {label} (Ctrl-C stops)", file=sys.stderr)
    code = _run(stream, source, args, view, files)
    if files is not None and not args.quiet:
        print(f"whisper-at: wrote {files.base}.srt, .vtt, .jsonl", file=sys.stderr)
    return code


def _make_stream(args: argparse.Namespace):
    import torch
    from transformers import pipeline
    from transformers.utils import logging as hf_logging


    hf_logging.set_verbosity_error()  # warnings would scroll the live view away
    if args.quiet:
        hf_logging.disable_progress_bar()
    try:
        model = resolve_checked_model(args.model, args.at_low_compute, progress=not args.quiet)
        pipe = pipeline("whisper-at", model=model, device=args.device, dtype=getattr(torch, args.dtype))
        options = {"language": args.language, "task": args.task, "top_k": args.top_k,
                   "tag_threshold": args.tag_threshold, "label_language": args.label_language,
                   "event_threshold": args.event_threshold}
        return LiveTranscriber(pipe, step_s=args.step, **options)
    except (OSError, ValueError) as error:
        print(f"whisper-at: error: {error}", file=sys.stderr)
        return None


def _run(stream, source: FfmpegSource, args: argparse.Namespace, view, files) -> int:
    def emit(update: dict) -> None:
        if view is not None:
            view.show(update)
        else:
            sys.stdout.write(json.dumps(update, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        if files is not None:
            files.add(update)

    code = 0
    try:
        for update in live_updates(source, stream=stream, coalesce=True, stall_timeout_s=args.stall_timeout):
            emit(update)
    except KeyboardInterrupt:  # Ctrl-C: a clean finish
        for update in stream.finish():
            emit(update)
    except (StreamBroken, LiveStreamStalled) as error:
        code = 1
        message = f"{source.label}: {error}" if isinstance(error, LiveStreamStalled) else str(error)
        if view is not None:
            view.finish()
            view = None
        print(f"whisper-at: {message}", file=sys.stderr)
    finally:
        source.close()
        if view is not None:
            view.finish()
        if files is not None:
            files.finish()
    return code


if __name__ == "__main__":
    sys.exit(main())
