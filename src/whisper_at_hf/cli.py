"""`whisper-at`: transcribe and tag audio files from the command line.

    whisper-at talk.mp3                                   # default variant (small), downloaded once and cached
    whisper-at talk.mp3 recordings/ "clips/*.wav" --model large-v2 --at-low-compute --output-dir out
    whisper-at talk.mp3 --model DIR_OR_HUB_ID
    whisper-at --live [SOURCE]                            # live captions and tags (live_cli.py)

Writes `NAME.{txt,json,srt,vtt,tsv}` (and `NAME.tags.png` with `--plot`) per input. Option values and the output
folder are checked before the model loads (exit code 2, as argparse). A file that fails (cannot be read or resampled,
fails in the model, or its outputs cannot be written) is reported by name and skipped; the others are still written;
the exit code is 1 when any input failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from .audio import expand_audio_paths as expand_inputs
from .options import WINDOW_SECONDS, check_at_time_res, check_int, check_language, check_number, check_tag_threshold
from .writers import OUTPUT_FORMATS, write_result


def _checked(check, name: str):
    """An argparse `type` from a check of `options` (called with the parsed number): its `ValueError` becomes
    argparse's usage error (exit 2)."""

    def parse(text: str):
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        try:
            return check(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = name  # argparse names the type in some messages
    return parse


def _whole(name: str):
    return _checked(lambda value: check_int(name, value), name)


def check_output_dir(path: str) -> str | None:
    """Creates `path` if needed; returns why it cannot be used (not a folder, not writable), or `None`."""
    if os.path.exists(path) and not os.path.isdir(path):
        return f"output directory {path!r} exists and is not a directory"
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as error:
        return f"cannot create output directory {path!r}: {error.strerror or error}"
    try:  # a real write (os.access says yes to root, and knows nothing of read-only mounts)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        return f"output directory {path!r} is not writable: {error.strerror or error}"
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whisper-at", description="Transcribe audio with Whisper and tag its sounds (AudioSet) with Whisper-AT."
    )
    parser.add_argument("audio", nargs="+", help="audio files, directories or glob patterns")
    parser.add_argument(
        "--model",
        default=None,
        help="a released variant (tiny, tiny.en, base, base.en, small, small.en, medium, medium.en, large-v1, "
        "large-v2 = large, each also NAME_low from small up; downloaded once, then cached), a local checkpoint folder "
        "or a Hub id (default: small, or $WHISPER_AT_HF_DEFAULT_VARIANT)",
    )
    parser.add_argument(
        "--at-low-compute", action="store_true", help="with a variant name: its low-compute TL-TR-512 head"
    )
    parser.add_argument("--output-format", "-f", default="all", choices=[*OUTPUT_FORMATS, "all"])
    parser.add_argument("--output-dir", "-o", default=".", help="where to write the outputs (default: .)")
    parser.add_argument(
        "--at-time-res",
        type=_checked(check_at_time_res, "--at-time-res"),
        default=None,
        help=f"tag window in seconds, multiple of 0.4, at most {WINDOW_SECONDS:g}",
    )
    parser.add_argument("--top-k", type=_whole("--top-k"), default=5, help="tags per window (default: 5)")
    parser.add_argument(
        "--tag-threshold",
        type=_checked(check_tag_threshold, "--tag-threshold"),
        default=None,
        help="minimum tag probability",
    )
    parser.add_argument(
        "--label-language", default="follow_asr", help='"follow_asr" (default), or a code such as "en", "de"'
    )
    parser.add_argument("--language", default=None, help="spoken language (default: detected)")
    parser.add_argument("--task", default="transcribe", choices=["transcribe", "translate"])
    parser.add_argument(
        "--chunk-length-s",
        type=_checked(lambda value: check_number("--chunk-length-s", value, 0.0, WINDOW_SECONDS, True), "seconds"),
        default=None,
        help="chunked long-form (default: sequential)",
    )
    parser.add_argument("--batch-size", type=_whole("--batch-size"), default=1)
    parser.add_argument(
        "--num-beams", type=_whole("--num-beams"), default=None, help="beam size (default: the pipeline's, 5)"
    )
    parser.add_argument(
        "--max-new-tokens", type=_whole("--max-new-tokens"), default=None, help="token limit per 30 s window"
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument("--plot", action="store_true", help="also write NAME.tags.png (needs matplotlib)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar or per-file messages")
    parser.add_argument("--live", action="store_true", help="live captions: whisper-at --live [SOURCE] --help")
    return parser


def _output_name(path: str, taken: set[str]) -> str:
    """`dir/talk.mp3` -> `talk`; a repeated stem gets its extension too (`talk.wav`) and then a counter."""
    name = Path(path).stem or "audio"
    for candidate in (name, Path(path).name, *(f"{name}-{n}" for n in range(2, 10_000))):
        if candidate not in taken:
            taken.add(candidate)
            return candidate
    raise RuntimeError("too many inputs share one name")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--live" in argv:  # live captions: their own options, in live_cli
        from .live_cli import main as live_main

        return live_main([arg for arg in argv if arg != "--live"])
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = check_output_dir(args.output_dir) or _check_device(args.device)
    if args.language is not None and not problem:
        try:
            check_language("--language", args.language)
        except ValueError as error:
            problem = str(error)
    if problem:
        parser.error(problem)  # exit 2, before the model loads
    formats = list(OUTPUT_FORMATS) if args.output_format == "all" else [args.output_format]
    files = expand_inputs(args.audio)
    # a folder argument without audio files in it is a failed input, not a silent no-op
    empty_folders = [pattern for pattern in args.audio if os.path.isdir(pattern) and not expand_inputs([pattern])]
    for folder in empty_folders:
        print(f"whisper-at: skipped {folder}: is a directory holding no audio files", file=sys.stderr)
    if not files:
        print("whisper-at: no audio files found", file=sys.stderr)
        return 1

    import torch
    from tqdm.auto import tqdm
    from transformers import pipeline
    from transformers.utils import logging as hf_logging

    from . import WhisperATPipeline  # noqa: F401  (registers the "whisper-at" task)
    from .labels import load_label_names
    from .original_release import resolve_model

    if args.quiet:
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    try:
        model = resolve_model(args.model, args.at_low_compute, progress=not args.quiet)
    except (OSError, ValueError) as error:
        print(f"whisper-at: error: {error}", file=sys.stderr)
        return 2
    pipe = pipeline("whisper-at", model=model, device=args.device, dtype=getattr(torch, args.dtype))
    call_kwargs = {
        "return_timestamps": True,  # cues need segments; Whisper's long-form decoding needs timestamps
        "top_k": args.top_k,
        "label_language": args.label_language,
        "task": args.task,
        "batch_size": args.batch_size,
        "return_tag_logits": args.plot,
    }
    for key, value in (
        ("at_time_res", args.at_time_res),
        ("tag_threshold", args.tag_threshold),
        ("language", args.language),
        ("chunk_length_s", args.chunk_length_s),
        ("num_beams", args.num_beams),
        ("max_new_tokens", args.max_new_tokens),
    ):
        if value is not None:
            call_kwargs[key] = value
    if args.chunk_length_s:
        call_kwargs["ignore_warning"] = True
    if not pipe.model.generation_config.is_multilingual:
        call_kwargs.pop("task")  # English-only checkpoints take no task / language
        call_kwargs.pop("language", None)

    failed: list[str] = list(empty_folders)
    plotting_failed = False
    taken: set[str] = set()
    progress = tqdm(total=len(files), unit="file", disable=args.quiet, dynamic_ncols=True)
    windows = 0
    for begin in range(0, len(files), args.batch_size):
        group = files[begin : begin + args.batch_size]
        for path, result in zip(group, _run_group(pipe, group, call_kwargs)):
            progress.update(1)
            if "error" in result:
                failed.append(path)
                progress.write(f"whisper-at: skipped {result['error']}", file=sys.stderr)
                continue
            name = _output_name(path, taken)
            try:
                written = write_result(result, args.output_dir, name, formats)
            except OSError as error:  # e.g. disk full, a folder in the way: this file failed, the others go on
                failed.append(path)
                progress.write(f"whisper-at: skipped {path}: cannot write its outputs: {error}", file=sys.stderr)
                continue
            windows += len(result["audio_tags"])
            progress.set_postfix(windows=windows)
            if args.plot and not plotting_failed:
                from .plotting import PlottingUnavailable, plot_tags

                names = load_label_names(pipe.model.name_or_path, pipe.model.config.id2label)
                language = result["language"] if args.label_language == "follow_asr" else args.label_language
                try:
                    png = Path(args.output_dir) / f"{name}.tags.png"
                    written.append(plot_tags(result, names.get(language or "en"), png, title=Path(path).name))
                except PlottingUnavailable as error:
                    plotting_failed = True
                    progress.write(f"whisper-at: {error}", file=sys.stderr)
                except Exception as error:  # noqa: BLE001  (a plot is an extra: its failure must not stop the run)
                    plotting_failed = True
                    progress.write(f"whisper-at: {path}: cannot plot its tags: {error}", file=sys.stderr)
            if not args.quiet:
                progress.write(f"{path} -> {', '.join(str(p) for p in written)}")
    progress.close()
    if failed:
        total = len(files) + len(empty_folders)
        print(f"whisper-at: {len(failed)} of {total} inputs failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or plotting_failed else 0


def _check_device(device: str) -> str | None:
    """Why `--device` cannot be used here (CUDA asked for but absent, or a GPU index past the last), or `None`."""
    import torch

    if not device.startswith("cuda"):
        return None
    if not torch.cuda.is_available():
        return f"--device {device}: CUDA is not available on this machine (use --device cpu)"
    index = device.partition(":")[2]
    if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
        return f"--device {device}: no such GPU (this machine has {torch.cuda.device_count()})"
    return None


def _run_group(pipe, group: list[str], call_kwargs: dict) -> list[dict]:
    """The pipeline's results for `group`; undecodable files come back as `{"error"}` entries from the pipeline. An
    exception of any other kind (from the model, say) is retried file by file, so it costs only the file causing it."""
    try:
        return pipe(list(group), **call_kwargs)
    except Exception as error:  # noqa: BLE001  (one bad file must not stop the others)
        if len(group) > 1:
            return [result for path in group for result in _run_group(pipe, [path], call_kwargs)]
        return [{"error": f"{group[0]}: {type(error).__name__}: {error}", "source": group[0]}]


if __name__ == "__main__":
    sys.exit(main())
