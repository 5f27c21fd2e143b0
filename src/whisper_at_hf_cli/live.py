"""The arguments of `whisper-at --live [SOURCE]` (see `whisper_at_hf.live_cli`)."""

from __future__ import annotations

import argparse

from .arguments import checked
from .rules import rules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whisper-at --live", description="Live captions and sound tags from a microphone, a stream or a file."
    )
    parser.add_argument(
        "source", nargs="?", default=None,
        help="a URL or device ffmpeg opens (rtsp://, http://, HLS .m3u8), a file (played at real-time pace), or - "
        "(audio on stdin, any format ffmpeg reads from a pipe); default: the microphone",
    )
    parser.add_argument("--model", default=None, help="as offline: a variant name, a checkpoint folder or a Hub id")
    parser.add_argument("--at-low-compute", action="store_true", help="with a variant name: its low-compute head")
    parser.add_argument(
        "--step", type=checked(lambda v: rules.check_number("--step", v, 0.0, 15.0, True), "--step"),
        default=rules.LIVE_STEP_SECONDS,
        help=f"seconds of audio between steps (default: {rules.LIVE_STEP_SECONDS:g})",
    )
    parser.add_argument("--language", default=None, help="spoken language (multilingual models; default: detected)")
    parser.add_argument("--task", default="transcribe", choices=list(rules.TASKS))
    parser.add_argument("--top-k", type=checked(lambda v: rules.check_int("--top-k", v), "--top-k"), default=5)
    parser.add_argument(
        "--tag-threshold", type=checked(rules.check_tag_threshold, "--tag-threshold", "tag_threshold"), default=None
    )
    parser.add_argument("--label-language", default="en", help='label names\' language (default: "en")')
    parser.add_argument(
        "--event-threshold",
        type=checked(lambda v: rules.check_event_values(v)["event_threshold"], "--event-threshold", "event_threshold"),
        default=None, help="event onset probability (default: the offline one)",
    )
    parser.add_argument("--output-format", "-f", default="text", choices=["text", "jsonl"],
                        help="stdout: text (committed text, dimmed tentative tail, tags) or jsonl (one update a line)")
    parser.add_argument("--output-dir", "-o", default=None, help="also write NAME.srt / NAME.vtt / NAME.jsonl here")
    parser.add_argument("--name", default=None, help="NAME of the files (default: the file's stem, or 'live')")
    parser.add_argument("--input-format", default=None,
                        help="ffmpeg input format for a device (e.g. alsa, pulse, avfoundation, dshow)")
    parser.add_argument(
        "--stall-timeout",
        type=checked(lambda v: rules.check_number("--stall-timeout", v, 0.0, None, True), "seconds"),
        default=30.0, help="give up when the source sends no audio for this many seconds (default: 30)",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--quiet", "-q", action="store_true", help="no messages on stderr but errors")
    return parser


__all__ = ["build_parser"]
