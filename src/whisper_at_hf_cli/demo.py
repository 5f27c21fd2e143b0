"""The arguments of `whisper-at-demo` (see `whisper_at_hf.demo`)."""

from __future__ import annotations

import argparse

from . import __version__
from .rules import rules


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="whisper-at-demo", description="Whisper-AT in the browser (Gradio).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--model", default=None, help="a variant name, a checkpoint folder or a Hub id")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument(
        "--step", type=float, default=rules.LIVE_STEP_SECONDS,
        help=f"seconds of audio between live steps (default: {rules.LIVE_STEP_SECONDS:g})",
    )
    parser.add_argument("--device", default="cpu")
    return parser


__all__ = ["build_parser"]
