"""The arguments of `whisper-at` (see `whisper_at_hf.cli`): its parser, and which of its two modes a command line asks
for (`whisper-at --live ...` has its own options, in [`live`])."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import __version__
from .arguments import checked
from .rules import rules

PROG = "whisper-at"
LIVE_FLAG = "--live"
# What the outputs can be (`whisper_at_hf.writers` writes them; the parser offers them before it is imported).
OUTPUT_FORMATS = ("txt", "json", "srt", "vtt", "tsv", "events")
CAPTION_MODES = ("sdh", "plain", "tags")


def live_arguments(argv: Sequence[str]) -> list[str] | None:
    """`whisper-at --live ARGS`: the arguments for the live parser (`ARGS`, wherever `--live` stood), else `None`."""
    return [arg for arg in argv if arg != LIVE_FLAG] if LIVE_FLAG in argv else None


def _whole(name: str):
    return checked(lambda value: rules.check_int(name, value), name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Transcribe audio with Whisper and tag its sounds (AudioSet) with Whisper-AT."
    )
    parser.add_argument("audio", nargs="+", help="audio files, directories or glob patterns")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--model",
        default=None,
        help="a released variant (tiny, tiny.en, base, base.en, small, small.en, medium, medium.en, large-v1, "
        "large-v2 = large, each also NAME_low from small up; downloaded once, then cached), a local checkpoint folder "
        "or a Hub id (default: small, or $WHISPER_AT_HF_DEFAULT_VARIANT)",
    )
    parser.add_argument("--revision", default=None, help="with a Hub id: the model revision (branch, tag or commit)")
    parser.add_argument(
        "--at-low-compute", action="store_true", help="with a variant name: its low-compute TL-TR-512 head"
    )
    parser.add_argument(
        "--output-format", "-f", default="all", choices=[*OUTPUT_FORMATS, "all"], help="events: NAME.events.tsv"
    )
    parser.add_argument(
        "--captions",
        default="sdh",
        choices=CAPTION_MODES,
        help="what .srt / .vtt show: sdh (default: transcript and [Music], [Bark] ... sound cues), plain "
        "(transcript only) or tags (transcript segments and one cue of scores per tag window)",
    )
    parser.add_argument(
        "--word-timestamps", action="store_true", help="cut long captions at Whisper's word times (JSON: word chunks)"
    )
    parser.add_argument("--output-dir", "-o", default=".", help="where to write the outputs (default: .)")
    _add_tag_options(parser)
    _add_decoding_options(parser)
    parser.add_argument("--plot", action="store_true", help="also write NAME.tags.png (needs matplotlib)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar or per-file messages")
    parser.add_argument(LIVE_FLAG, action="store_true", help="live captions: whisper-at --live [SOURCE] --help")
    return parser


def _add_tag_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--at-time-res",
        type=checked(rules.check_at_time_res, "--at-time-res"),
        default=None,
        help=f"tag window in seconds, multiple of {rules.POOLED_FRAME_SECONDS:g}, at most {rules.WINDOW_SECONDS:g}",
    )
    parser.add_argument("--top-k", type=_whole("--top-k"), default=5, help="tags per window (default: 5)")
    parser.add_argument(
        "--tag-threshold",
        type=checked(rules.check_tag_threshold, "--tag-threshold"),
        default=None,
        help="minimum tag probability",
    )
    parser.add_argument(
        "--event-threshold",
        type=checked(lambda value: rules.check_event_values(threshold=value)["event_threshold"], "probability"),
        default=None,
        help="sound event onset probability (default: the pipeline's)",
    )
    parser.add_argument(
        "--event-min-duration",
        type=checked(lambda value: rules.check_event_values(min_duration=value)["event_min_duration"], "seconds"),
        default=None,
        help="shortest sound event in seconds (default: the pipeline's)",
    )
    parser.add_argument(
        "--label-language", default="follow_asr", help='"follow_asr" (default), or a code such as "en", "de"'
    )


def _add_decoding_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--language", default=None, help="spoken language (default: detected)")
    parser.add_argument("--task", default="transcribe", choices=list(rules.TASKS))
    parser.add_argument(
        "--chunk-length-s",
        type=checked(lambda value: rules.check_chunk_length_s(value, "--chunk-length-s", allow_off=False), "seconds"),
        default=None,
        help="chunked long-form (default: sequential)",
    )
    parser.add_argument("--batch-size", type=_whole("--batch-size"), default=1)
    parser.add_argument(
        "--num-beams",
        type=checked(lambda value: rules.check_num_beams(value, "--num-beams"), "--num-beams"),
        default=None,
        help="beam size (default: the pipeline's, 5)",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=checked(lambda value: rules.check_max_new_tokens(value, name="--max-new-tokens"), "--max-new-tokens"),
        default=None,
        help="token limit per 30 s window",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])


__all__ = ["CAPTION_MODES", "LIVE_FLAG", "OUTPUT_FORMATS", "build_parser", "live_arguments"]
