"""The console scripts (`setup.cfg`): each parses its arguments here, so `--help`, `--version` and usage errors (exit
2) answer without importing torch or transformers, then imports its command's module in `whisper_at_hf` and runs it on
the parsed options. `whisper_at_hf.cli.main(argv)` & co. do the same with the same parsers, for callers in Python."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from . import annotate as annotate_arguments
from . import convert as convert_arguments
from . import demo as demo_arguments
from . import live as live_arguments
from . import whisper_at as whisper_at_arguments


def _run(module: str, args: argparse.Namespace) -> int:
    """`whisper_at_hf.<module>.run(args)`: the import (seconds: torch, transformers, the package's registrations)
    happens only now, once the options are known to be usable."""
    return importlib.import_module(f"whisper_at_hf.{module}").run(args)


def _argv(argv: Sequence[str] | None) -> list[str]:
    return sys.argv[1:] if argv is None else list(argv)


def whisper_at(argv: Sequence[str] | None = None) -> int:
    """`whisper-at FILES...` and `whisper-at --live [SOURCE]`."""
    argv = _argv(argv)
    live = whisper_at_arguments.live_arguments(argv)
    if live is not None:
        return _run("live_cli", live_arguments.build_parser().parse_args(live))
    return _run("cli", whisper_at_arguments.build_parser().parse_args(argv))


def annotate(argv: Sequence[str] | None = None) -> int:
    """`whisper-at-annotate` (started once per process; `accelerate launch` / `torchrun` start the module itself)."""
    return _run("annotate", annotate_arguments.parse_args(_argv(argv)))


def convert(argv: Sequence[str] | None = None) -> int:
    """`whisper-at-convert`."""
    return _run("convert_original_whisper_at", convert_arguments.build_parser().parse_args(_argv(argv)))


def demo(argv: Sequence[str] | None = None) -> int:
    """`whisper-at-demo`."""
    return _run("demo", demo_arguments.build_parser().parse_args(_argv(argv)))


CONSOLE_SCRIPTS: dict[str, Callable[..., int]] = {
    "whisper-at": whisper_at,
    "whisper-at-annotate": annotate,
    "whisper-at-convert": convert,
    "whisper-at-demo": demo,
}

__all__ = ["CONSOLE_SCRIPTS", "annotate", "convert", "demo", "whisper_at"]
