"""`whisper-at`: transcribe and tag audio files from the command line.

    whisper-at talk.mp3                                   # default variant (small), downloaded once and cached
    whisper-at talk.mp3 recordings/ "clips/*.wav" --model large-v2 --at-low-compute --output-dir out
    whisper-at talk.mp3 --model DIR_OR_HUB_ID
    whisper-at --live [SOURCE]                            # live captions and tags (live_cli.py)

Writes `NAME.{txt,json,srt,vtt,tsv,events.tsv}` (and `NAME.tags.png` with `--plot`) per input, each atomically;
`.srt` / `.vtt` are SDH captions by default (`--captions`). Option values and the output folder are checked before the
model loads (exit code 2, as argparse). A file that fails (cannot be read or resampled, fails in the model, or its
outputs cannot be written) is reported once, by name, and skipped; the others are still written; the exit code is 1
when any input failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from whisper_at_hf_cli.whisper_at import OUTPUT_FORMATS, build_parser, live_arguments

from .file_utils import check_output_dir
from .file_utils import expand_audio_paths as expand_inputs
from .captions import SoundClasses
from .labels import model_label_names
from .cli_options import check_device
from .options import check_language, check_language_and_task
from .original_variants import is_variant_name
from .plotting import PlottingUnavailable, plot_tags
from .model_sources import resolve_checked_model
from .writers import write_result


def _output_name(path: str, taken: set[str]) -> str:
    """`dir/talk.mp3` -> `talk`; a repeated stem gets its extension too (`talk.wav`) and then a counter."""
    name = Path(path).stem or "audio"
    for candidate in (name, Path(path).name, *(f"{name}-{n}" for n in range(2, 10_000))):
        if candidate not in taken:
            taken.add(candidate)
            return candidate
    raise RuntimeError("too many inputs share one name")


def main(argv: list[str] | None = None) -> int:
    """`whisper-at ARGS` from Python (the console script parses in `whisper_at_hf_cli` first, then calls [`run`])."""
    argv = sys.argv[1:] if argv is None else list(argv)
    live = live_arguments(argv)
    if live is not None:  # live captions: their own options, in live_cli
        from .live_cli import main as live_main  # (loaded only for --live: the streaming stack and its sources)

        return live_main(live)
    return run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Transcribes, tags and writes the inputs of the parsed `args` (`whisper_at_hf_cli.whisper_at.build_parser`)."""
    problem = _check_args(args)
    if problem:
        build_parser().error(problem)  # exit 2, before the model loads
    files, empty_folders = _inputs(args.audio)
    if not files:
        print("whisper-at: no audio files found", file=sys.stderr)
        return 1
    # the run quiets this package's logger (it reports skipped inputs itself): as it was again when main returns,
    # for callers that run main in their own process (tests, notebooks)
    package_logger = logging.getLogger(f"transformers.{__package__}")
    level = package_logger.level
    try:
        run = _Run(args)
        failed = list(empty_folders) + run.process(files)
    except (OSError, ValueError) as error:  # a model that cannot be found or loaded
        print(f"whisper-at: error: {error}", file=sys.stderr)
        return 2
    finally:
        package_logger.setLevel(level)
    if failed:
        total = len(files) + len(empty_folders)
        print(f"whisper-at: {len(failed)} of {total} inputs failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed or run.plotting_failed else 0


def _check_args(args: argparse.Namespace) -> str | None:
    """Why the options cannot be used (checked before any audio is decoded or the model loads), or `None`."""
    problem = check_output_dir(args.output_dir)
    if not problem:
        try:
            check_device(args.device, "--device")
            if args.language is not None:
                check_language("--language", args.language)
        except ValueError as error:
            problem = str(error)
    if args.revision is not None and not problem:
        if args.model is None or is_variant_name(args.model) or Path(args.model).expanduser().is_dir():
            problem = f"--revision applies to a Hub id, not to {args.model or 'the default variant'!r}"
    return problem


def _inputs(patterns: list[str]) -> tuple[list[str], list[str]]:
    """The audio files of `patterns`, and the folders among them that hold none (each reported here: a failed
    input, not a silent no-op)."""
    files = expand_inputs(patterns)
    empty_folders = [pattern for pattern in patterns if os.path.isdir(pattern) and not expand_inputs([pattern])]
    for folder in empty_folders:
        print(f"whisper-at: skipped {folder}: is a directory holding no audio files", file=sys.stderr)
    return files, empty_folders


class _Run:
    """One run: the pipeline (loaded once), its call options, and what the outputs need (label names, which classes
    are Speech or music for the captions)."""

    def __init__(self, args: argparse.Namespace):
        import torch
        from transformers import pipeline

        _quiet_loggers(args.quiet)
        model = resolve_checked_model(args.model, args.at_low_compute, revision=args.revision, progress=not args.quiet)
        self.pipe = pipeline(
            "whisper-at", model=model, revision=args.revision, device=args.device, dtype=getattr(torch, args.dtype)
        )
        # From here on the run reports every skipped input itself, by name: the pipeline's own warning for a bad
        # input of a list would repeat it (as "input N" of the batch).
        logging.getLogger(f"transformers.{__package__}").setLevel(logging.ERROR)
        self.label_names = model_label_names(self.pipe.model, args.revision)
        self.classes = SoundClasses.for_labels(self.label_names.get("en"))
        # options' one rule for --language / --task: English / transcribe on an English-only model are dropped, the
        # rest refused (a ValueError: exit code 2, as for a model that cannot be loaded)
        multilingual = getattr(self.pipe.model.generation_config, "is_multilingual", True)
        check_language_and_task(args.language, args.task, multilingual, args.model or "the model", ("--language", "--task"))
        self.call_kwargs = _call_kwargs(args, multilingual)
        self.formats = list(OUTPUT_FORMATS) if args.output_format == "all" else [args.output_format]
        self.args = args
        self.plotting_failed = False

    def process(self, files: list[str]) -> list[str]:
        """Transcribes, tags and writes `files`, `--batch-size` at a time; returns those that failed."""
        from tqdm.auto import tqdm

        failed: list[str] = []
        taken: set[str] = set()
        progress = tqdm(total=len(files), unit="file", disable=self.args.quiet, dynamic_ncols=True)
        for begin in range(0, len(files), self.args.batch_size):
            group = files[begin : begin + self.args.batch_size]
            for path, result in zip(group, _run_group(self.pipe, group, self.call_kwargs)):
                progress.update(1)
                if "error" in result:
                    problem = result["error"]
                else:
                    problem = self.write(path, result, _output_name(path, taken), progress)
                if problem:
                    failed.append(path)
                    progress.write(f"whisper-at: skipped {problem}", file=sys.stderr)
        progress.close()
        return failed

    def write(self, path: str, result: dict, name: str, progress) -> str | None:
        """Writes the outputs of one input (and its plot); returns why they could not be written, or `None`."""
        try:
            written = write_result(result, self.args.output_dir, name, self.formats, self.args.captions, self.classes)
        except OSError as error:  # e.g. disk full, a folder in the way: this file failed, the others go on
            return f"{path}: cannot write its outputs: {error}"
        if self.args.plot and not self.plotting_failed:
            written += self.plot(path, result, name, progress)
        if not self.args.quiet:
            progress.write(f"{path} -> {', '.join(str(p) for p in written)}")
        return None

    def plot(self, path: str, result: dict, name: str, progress) -> list[Path]:
        """`NAME.tags.png`, or nothing when it cannot be drawn (then no further plots are tried: exit code 1)."""
        language = result["language"] if self.args.label_language == "follow_asr" else self.args.label_language
        try:
            png = Path(self.args.output_dir) / f"{name}.tags.png"
            return [plot_tags(result, self.label_names.get(language or "en"), png, title=Path(path).name)]
        except PlottingUnavailable as error:
            progress.write(f"whisper-at: {error}", file=sys.stderr)
        except Exception as error:  # noqa: BLE001  (a plot is an extra: its failure must not stop the run)
            progress.write(f"whisper-at: {path}: cannot plot its tags: {error}", file=sys.stderr)
        self.plotting_failed = True
        return []


def _quiet_loggers(quiet: bool) -> None:
    """`--quiet`: only errors, from transformers and from this package's own loggers, and no progress bars."""
    if not quiet:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger(f"transformers.{__package__}").setLevel(logging.ERROR)


def _call_kwargs(args: argparse.Namespace, multilingual: bool) -> dict:
    """The pipeline's call options from the command line."""
    call_kwargs = {
        # cues need segments (word times with --word-timestamps); Whisper's long-form decoding needs timestamps
        "return_timestamps": "word" if args.word_timestamps else True,
        "top_k": args.top_k,
        "label_language": args.label_language,
        "batch_size": args.batch_size,
        "return_tag_logits": args.plot,
        "return_events": True,
    }
    if args.word_timestamps:
        call_kwargs["return_word_segments"] = True
    if multilingual:  # English-only checkpoints take no task / language
        call_kwargs.update(task=args.task, language=args.language)
    for key in ("at_time_res", "tag_threshold", "chunk_length_s", "num_beams", "max_new_tokens",
                "event_threshold", "event_min_duration"):  # fmt: skip
        if getattr(args, key) is not None:
            call_kwargs[key] = getattr(args, key)
    if args.chunk_length_s:
        call_kwargs["ignore_warning"] = True
    return {key: value for key, value in call_kwargs.items() if value is not None}


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
