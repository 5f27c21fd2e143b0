"""`whisper-at-convert`: original Whisper-AT checkpoints (`*_ori.pth`, `*_low.pth` TL-TR heads) -> this package.

The original head is an `ATModel` whose state dict keys start with `at_model.` in the released files. This module
owns the mapping of those names to `WhisperATHead`'s, the inference of the head settings from the tensors, the
conversion of OpenAI Whisper checkpoints (`tiny.pt` ... `large-v2.pt`) to transformers' layout, and the
`whisper-at-convert` command that writes a complete (or head-only) checkpoint with labels and a model card:

    whisper-at-convert --whisper openai/whisper-large-v2 --at-checkpoint large-v2_ori.pth --output whisper-at-large-v2
    whisper-at-convert --whisper large-v2.pt --processor openai/whisper-large-v2 --at-checkpoint large-v2_low.pth \
        --output whisper-at-large-v2-low --head-only --base-model openai/whisper-large-v2

With `--variant` and no `--at-checkpoint`, the released head and its Whisper are downloaded (and cached) first:

    whisper-at-convert --variant large-v2 --output whisper-at-large-v2     # a portable checkpoint folder
    whisper-at-convert --variant small --download-only                     # pre-fetch into the cache (offline use)
    whisper-at-convert --variant all --push-to-hub whisper-at-hf           # maintainers: publish all 16
"""


from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from whisper_at_hf_cli.convert import build_parser

from .checkpoint_folder import output_folder_problem
from .conversion import convert_whisper_at_checkpoint
from .hub_upload import upload_folder
from .model_card import original_variant_card

# the original format's names, documented here (`whisper_at_hf.convert_original_whisper_at.export_original_checkpoint`)
from .original_format import (
    ORIGINAL_PREFIX,
    convert_original_head_state_dict,
    export_original_checkpoint,
    hf_head_key_to_original,
    hf_key_to_openai_whisper,
    load_openai_whisper,
    load_original_head,
    load_torch_checkpoint,
    openai_dims_to_whisper_config,
    openai_whisper_key_to_hf,
    original_head_key_to_hf,
)
from .model_sources import WHISPER_MODEL_TYPE, check_model_source
from .original_variants import find_original_variant, get_variant, variant_names
from .release_downloads import download_release_head, download_whisper
from .release_resolver import released_checkpoint


def main(argv: Sequence[str] | None = None) -> int:
    """`whisper-at-convert`: original Whisper-AT checkpoints -> transformers checkpoints (from Python; the console
    script parses in `whisper_at_hf_cli` first, then calls [`run`])."""
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Converts (or downloads, or publishes) as the parsed `args` (`whisper_at_hf_cli.convert.build_parser`) say."""
    parser = build_parser()  # for its usage errors (exit 2)
    problem = _usage_problem(args)
    if problem:
        parser.error(problem)  # exit 2, before anything loads or is written
    try:
        if args.variant and not args.at_checkpoint:
            return _convert_released(args)
        if args.download_only or args.push_to_hub:
            parser.error("--download-only and --push-to-hub need --variant without --at-checkpoint")
        if not args.at_checkpoint or not args.output:
            parser.error("give --at-checkpoint and --output (or --variant NAME to download the released head)")
        if args.whisper is None:
            if not args.variant:
                parser.error("give --whisper (or --variant NAME for its Whisper)")
            args.whisper = get_variant(args.variant).base_model
        model = convert_whisper_at_checkpoint(
            args.whisper,
            args.at_checkpoint,
            args.output,
            head_only=args.head_only,
            labels=args.labels,
            dtype=args.dtype,
            processor=args.processor,
            base_model_name_or_path=args.base_model,
            base_model_revision=args.base_model_revision,
            variant=args.variant,
            overwrite=args.overwrite,
        )
    except (ValueError, FileNotFoundError, OSError) as error:
        print(f"whisper-at-convert: error: {error}", file=sys.stderr)
        return 1
    _report(model, args.output, args.head_only)
    return 0


def _usage_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the options as given (checked before any download or conversion), or `None`."""
    names = None
    if args.variant:
        names = variant_names() if args.variant == "all" else [n.strip() for n in args.variant.split(",") if n.strip()]
        unknown = [name for name in names if find_original_variant(name) is None]
        if unknown or not names:
            what = ", ".join(repr(name) for name in unknown) or repr(args.variant)
            close = difflib.get_close_matches(unknown[0], variant_names(), n=1) if unknown else []
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            return (
                f"--variant: {what} is not a released Whisper-AT variant{hint}; the variants are "
                f"{', '.join(variant_names())}"
            )
        if args.at_checkpoint and len(names) > 1:
            return "--at-checkpoint converts one head: give one --variant name"
    if args.whisper is not None and not Path(args.whisper).is_file():  # an OpenAI .pt file is taken as such
        try:
            check_model_source(args.whisper, expect=WHISPER_MODEL_TYPE, option="--whisper")
        except ValueError as error:
            return str(error)
    if args.output and not args.download_only:
        outputs = [Path(args.output)]
        if names and len(names) > 1 and not args.at_checkpoint:
            outputs = [Path(args.output) / get_variant(name).repo_name for name in names]
        for output in outputs:
            problem = output_folder_problem(output, args.overwrite)
            if problem:
                return problem
    return None


def _report(model: Any, output: str | os.PathLike, head_only: bool) -> None:
    kind = "head-only checkpoint" if head_only else "checkpoint"
    mode = f"TL-TR-{model.config.at_low_dim}" if model.config.at_low_dim else "TL-TR"
    print(
        f"wrote {kind} to {output}: {mode} head on {model.config.encoder_layers} layers x "
        f"d_model {model.config.d_model}, {model.config.num_labels} labels"
    )



def _convert_released(args: argparse.Namespace) -> int:
    """`--variant NAME|all|A,B` without `--at-checkpoint`: download (cached), convert, write / push / just cache."""
    names = variant_names() if args.variant == "all" else [name.strip() for name in args.variant.split(",") if name]
    variants = [get_variant(name) for name in names]  # unknown names fail before any download
    if args.download_only:
        for variant in variants:
            print(f"{variant.name}: {released_checkpoint(variant)}")
        return 0
    if not args.output and not args.push_to_hub:
        raise ValueError("give --output DIR, --push-to-hub ORG or --download-only with --variant")
    for variant in variants:
        whisper_dir = download_whisper(variant)
        whisper_config = json.loads((whisper_dir / "config.json").read_text())
        head = download_release_head(variant, whisper_config=whisper_config, whisper=variant.base_model)
        with tempfile.TemporaryDirectory(prefix="whisper-at-convert-") as scratch:
            if args.output:
                output = Path(args.output) / variant.repo_name if len(variants) > 1 else Path(args.output)
            else:
                output = Path(scratch) / variant.repo_name
            model = convert_whisper_at_checkpoint(
                str(whisper_dir),
                head.path,
                output,
                head_only=args.head_only,
                labels=args.labels,
                dtype=args.dtype,
                processor=str(whisper_dir),
                base_model_name_or_path=variant.base_model,
                base_model_revision=whisper_dir.name,
                variant=variant.name,
                overwrite=args.overwrite,
            )
            _report(model, output, args.head_only)
            if args.push_to_hub:
                repo_id = f"{args.push_to_hub}/{variant.repo_name}"
                card = original_variant_card(variant, head_only=args.head_only, repo_id=repo_id)
                (output / "README.md").write_text(card, encoding="utf-8")
                upload_folder(output, repo_id, private=args.private,
                              commit_message=f"{variant.head_file} converted onto {variant.base_model}@{whisper_dir.name[:12]}")  # fmt: skip
                print(f"pushed {variant.name} to {repo_id}")
    return 0


__all__ = [
    "ORIGINAL_PREFIX",
    "convert_original_head_state_dict",
    "convert_whisper_at_checkpoint",
    "export_original_checkpoint",
    "hf_head_key_to_original",
    "hf_key_to_openai_whisper",
    "load_openai_whisper",
    "load_original_head",
    "load_torch_checkpoint",
    "main",
    "openai_dims_to_whisper_config",
    "openai_whisper_key_to_hf",
    "original_head_key_to_hf",
    "run",
]


if __name__ == "__main__":
    sys.exit(main())
