"""The arguments of `whisper-at-convert` (see `whisper_at_hf.convert_original_whisper_at`)."""

from __future__ import annotations

import argparse

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whisper-at-convert",
        description="Convert an original Whisper-AT head (*_ori.pth / *_low.pth) and its Whisper into a "
        "transformers checkpoint (WhisperForAudioTaggingAndASR), or a head-only checkpoint. With --variant and no "
        "--at-checkpoint, the released head and its Whisper are downloaded first.",
    )
    parser.add_argument(
        "--whisper",
        help="transformers Whisper dir or Hub id (e.g. openai/whisper-large-v2), or an OpenAI .pt checkpoint "
        "(default with --variant: the variant's openai/whisper-*)",
    )
    parser.add_argument("--at-checkpoint", help="original head file, e.g. large-v2_ori.pth (default: download it)")
    parser.add_argument(
        "--output", help="output folder (with several variants: one subfolder whisper-at-NAME per variant)"
    )
    parser.add_argument("--head-only", action="store_true", help="write only the head, naming the base Whisper")
    parser.add_argument(
        "--labels",
        help="folder with class_labels_indices.csv and label_name_dict.json (default: the installed whisper-at's)",
    )
    parser.add_argument("--dtype", choices=("float32", "float16", "bfloat16"), default=None, help="weights dtype")
    parser.add_argument(
        "--processor", help="transformers Whisper dir or Hub id for tokenizer/feature extractor/generation config"
    )
    parser.add_argument("--base-model", help="base Whisper to record in the config (default: --whisper)")
    parser.add_argument("--base-model-revision", help="revision of the base Whisper, if known")
    parser.add_argument(
        "--variant",
        help="released variant (large-v2, small_low, ...; 'all' or a comma list to download and convert several); "
        "with --at-checkpoint only names the model card",
    )
    parser.add_argument(
        "--download-only",
        action="store_true",
        help="with --variant: resolve into the cache (as `whisper-at --model NAME` does on first use) and print the "
        "path; nothing else is written",
    )
    parser.add_argument(
        "--push-to-hub", metavar="ORG", help="with --variant: push each converted checkpoint to ORG/whisper-at-NAME"
    )
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create private repos")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --output folder")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


__all__ = ["build_parser"]
