"""The arguments of `whisper-at-annotate` (see `whisper_at_hf.annotate`): the parser, and the checks of what was
parsed that need nothing but the options themselves (a usage error, exit 2, before anything is imported or read)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import __version__
from .rules import rules

TOOL = "whisper-at-annotate"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The checked options of `argv` (default: `sys.argv[1:]`); a usage error exits 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=TOOL,
        description="Transcribe and tag a corpus with Whisper-AT into Parquet shards (resumable, multi-process with "
        "`accelerate launch -m whisper_at_hf.annotate`).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "inputs", nargs="+",
        help="audio files / folders / globs, one CSV/JSON(L)/Parquet list, a save_to_disk folder, or a Hub dataset id",
    )
    parser.add_argument(
        "--model", default=None,
        help="a released variant (tiny.en, base, small, large-v2, ...: downloaded once, then cached), a local "
        "checkpoint folder or a Hub id (default: small, or $WHISPER_AT_HF_DEFAULT_VARIANT)",
    )
    parser.add_argument("--at-low-compute", action="store_true",
                        help="with a variant name: its low-compute TL-TR-512 head")
    parser.add_argument("--revision", default=None, help="model revision on the Hub (branch, tag or commit)")
    parser.add_argument("--output-dir", "-o", required=True, help="where the shards, manifests and errors go")
    io = parser.add_argument_group("input")
    io.add_argument("--audio-column", default="audio", help="column with the audio (path or datasets Audio)")
    io.add_argument("--id-column", default=None, help="column naming each input (default: 'id' if present, else the "
                    "audio path, else the row number)")
    io.add_argument("--split", default="train", help="dataset split (default: train)")
    io.add_argument("--dataset-config", default=None, help="dataset configuration name")
    io.add_argument("--dataset-revision", default=None, help="dataset revision on the Hub")
    io.add_argument("--streaming", action="store_true", help="stream the dataset instead of downloading it first")
    io.add_argument("--max-inputs", type=int, default=None, help="only the first N inputs (a trial run)")
    work = parser.add_argument_group("work")
    work.add_argument("--shard-size", type=int, default=500, help="inputs per output shard (default: 500)")
    work.add_argument("--batch-size", type=int, default=8, help="clips per model batch (default: 8)")
    work.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16"],
                      help="auto: float16 on CUDA, float32 elsewhere")
    work.add_argument("--decode-workers", type=int, default=2,
                      help="threads decoding the next batch while the model runs (0: decode in turn)")
    work.add_argument("--cpu", action="store_true", help="run on CPUs even where a GPU is present")
    work.add_argument("--overwrite", action="store_true", help="replace annotations made with other settings")
    work.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    tags = parser.add_argument_group("tags")
    tags.add_argument("--tags-only", action="store_true", help="encoder + head only, no transcript (much faster)")
    tags.add_argument("--top-k", type=int, default=5, help="labels kept per window (default: 5)")
    tags.add_argument("--tag-threshold", type=float, default=None, help="keep labels with probability >= this")
    tags.add_argument("--at-time-res", type=float, default=None, help="tag window in seconds, a multiple of 0.4")
    tags.add_argument("--label-language", default=None,
                      help='label names: "follow_asr" (default; "en" with --tags-only) or a code such as "de"')
    tags.add_argument("--save-probs", action="store_true", help="also store every window's probabilities (float16)")
    tags.add_argument("--events", action="store_true",
                      help="also store sound events [{label, label_id, start, end, score}] (not with --tags-only)")
    asr = parser.add_argument_group("transcript")
    asr.add_argument("--segments", action="store_true", help="also store Whisper's timestamped segments")
    asr.add_argument("--language", default=None, help="spoken language (default: detected)")
    asr.add_argument("--task", default=None, choices=["transcribe", "translate"])
    asr.add_argument("--num-beams", type=int, default=None, help="beam size (default: the pipeline's)")
    asr.add_argument("--max-new-tokens", type=int, default=None, help="token limit per 30 s window")
    hub = parser.add_argument_group("hub")
    hub.add_argument("--push-to-hub", metavar="USER/DATASET", default=None, help="upload as a Hub dataset")
    hub.add_argument("--hub-private", action="store_true", help="create the Hub dataset private")
    hub.add_argument("--hub-token", default=None, help="Hub token (default: the logged-in one)")
    return parser


def check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What no parser `type` can see (options that exclude each other, the rules of `option_rules`): a usage error
    (exit 2); fills in `--label-language`'s default, which depends on `--tags-only`."""
    if args.shard_size < 1 or args.batch_size < 1:
        parser.error("--shard-size and --batch-size must be at least 1")
    if args.decode_workers < 0:
        parser.error("--decode-workers must be >= 0")
    if args.top_k < 1:
        parser.error("--top-k must be at least 1")
    try:
        if args.tag_threshold is not None:
            rules.check_tag_threshold(args.tag_threshold)
        if args.at_time_res is not None:
            rules.check_at_time_res(args.at_time_res)
        if args.num_beams is not None:
            rules.check_num_beams(args.num_beams, "--num-beams")
        if args.max_new_tokens is not None:
            rules.check_max_new_tokens(args.max_new_tokens, name="--max-new-tokens")
    except ValueError as error:
        parser.error(str(error))
    if args.max_inputs is not None and args.max_inputs < 0:
        parser.error("--max-inputs must be >= 0")
    if args.tags_only:
        given = [flag for flag, value in (("--segments", args.segments), ("--language", args.language),
                                          ("--task", args.task), ("--num-beams", args.num_beams),
                                          ("--max-new-tokens", args.max_new_tokens), ("--events", args.events))
                 if value]
        if given:
            parser.error(f"--tags-only runs no decoder: {', '.join(given)} would have no effect")
        if args.label_language == "follow_asr":
            parser.error('--tags-only has no transcript language to follow: give --label-language CODE')
    if args.label_language is None:
        args.label_language = "en" if args.tags_only else "follow_asr"


__all__ = ["TOOL", "build_parser", "check_arguments", "parse_args"]
