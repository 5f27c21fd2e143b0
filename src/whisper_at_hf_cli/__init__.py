"""The command lines of whisper-at-hf, light: the argument parsers and the console-script entry points of
`whisper-at` (and `whisper-at --live`), `whisper-at-annotate`, `whisper-at-convert` and `whisper-at-demo`.

Standard library only. `import whisper_at_hf` takes seconds (torch, transformers, and it registers the Auto classes
and the pipeline task), so an entry point parses its arguments here first: `--help`, `--version` and usage errors
(exit code 2) answer at once, and only a command that will run imports `whisper_at_hf` and hands it the parsed
`argparse.Namespace`. The package's `__version__` is this one (`setup.cfg` reads it too).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
