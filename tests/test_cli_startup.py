"""`whisper_at_hf_cli` (issue 21, section 4): every console script answers `--help`, `--version` and usage errors
without importing torch or transformers (nor `whisper_at_hf`, whose `__init__` needs both), then hands the parsed
options to its command in `whisper_at_hf`. How fast that is: `benchmarks/cli_startup.py` (no timed tests here)."""

from __future__ import annotations

import configparser
import json
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, SHARED_AUDIO

from whisper_at_hf_cli import __version__, entry_points, rules

HEAVY = ("torch", "transformers", "whisper_at_hf")
# Runs one console-script function in a fresh interpreter and reports its exit code and which heavy packages it
# imported (on stdout's last line; the command's own output comes before it, its errors on stderr).
PROBE = """
import json, sys
from whisper_at_hf_cli.entry_points import CONSOLE_SCRIPTS
try:
    code = CONSOLE_SCRIPTS[sys.argv[1]](sys.argv[2:])
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "imported": [name for name in %r if name in sys.modules]}))
""" % (HEAVY,)


def probe(script: str, *argv: str) -> tuple[int, list[str], str, str]:
    """`(exit code, heavy packages imported, stdout before the report, stderr)` of `script ARGV`."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"))
    done = subprocess.run(
        [sys.executable, "-c", PROBE, script, *argv], capture_output=True, text=True, timeout=120, env=env
    )
    *out, report = done.stdout.rstrip("\n").split("\n")
    result = json.loads(report)
    return result["code"], result["imported"], "\n".join(out), done.stderr


SCRIPTS = ["whisper-at", "whisper-at-annotate", "whisper-at-convert", "whisper-at-demo"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_answers_without_torch_or_transformers(script):
    code, imported, out, err = probe(script, "--help")
    assert (code, imported, err) == (0, [], "")
    assert out.startswith(f"usage: {script} ") and "--model" in out


@pytest.mark.parametrize("script", SCRIPTS)
def test_version_answers_without_torch_or_transformers(script):
    code, imported, out, err = probe(script, "--version")
    assert (code, imported, err) == (0, [], "")
    assert out == f"{script} {__version__}"


@pytest.mark.parametrize(
    "script, argv, message",
    [
        ("whisper-at", ["a.wav", "--bogus"], "unrecognized arguments: --bogus"),
        ("whisper-at", [], "the following arguments are required: audio"),
        ("whisper-at", ["a.wav", "--captions", "fancy"], "invalid choice: 'fancy'"),
        ("whisper-at", ["a.wav", "--num-beams", "0"], "--num-beams must be a whole number >= 1, got 0."),
        ("whisper-at", ["a.wav", "--num-beams", "3000"], "--num-beams must be a whole number <= 64"),
        ("whisper-at", ["a.wav", "--max-new-tokens", "-5"], "--max-new-tokens must be a whole number >= 1, got -5."),
        ("whisper-at", ["a.wav", "--at-time-res", "0.5"], "at_time_res must be a positive multiple of 0.4 s"),
        ("whisper-at", ["a.wav", "--at-time-res", "40"], "at_time_res must be at most 30 s"),
        ("whisper-at", ["a.wav", "--chunk-length-s", "0.01"], "--chunk-length-s must be a number of seconds >= 5"),
        ("whisper-at", ["a.wav", "--event-threshold", "0"], "event_threshold must be a number > 0 and <= 1, got 0"),
        ("whisper-at", ["a.wav", "--top-k", "x"], "argument --top-k: not a number: 'x'"),
        ("whisper-at", ["--live", "--step", "0"], "argument --step: --step must be a number > 0 and <= 15, got 0."),
        ("whisper-at", ["--live", "--tag-threshold", "2"], "--tag-threshold must be a number >= 0 and <= 1, got 2"),
        ("whisper-at", ["--live", "a", "b"], "unrecognized arguments: b"),
        ("whisper-at-annotate", [], "the following arguments are required: inputs, --output-dir/-o"),
        ("whisper-at-annotate", ["x", "-o", "out", "--num-beams", "0"], "--num-beams must be a whole number >= 1"),
        ("whisper-at-annotate", ["x", "-o", "out", "--at-time-res", "0.5"], "positive multiple of 0.4 s"),
        ("whisper-at-annotate", ["x", "-o", "out", "--tags-only", "--segments"], "--tags-only runs no decoder"),
        ("whisper-at-annotate", ["x", "-o", "out", "--shard-size", "0"], "--shard-size and --batch-size must be"),
        ("whisper-at-convert", ["--dtype", "float64"], "argument --dtype: invalid choice: 'float64'"),
        ("whisper-at-demo", ["--port", "http"], "argument --port: invalid int value: 'http'"),
    ],
)
def test_usage_errors_answer_without_torch_or_transformers(script, argv, message):
    code, imported, out, err = probe(script, *argv)
    assert (code, imported, out) == (2, [], "")
    prog = "whisper-at --live" if "--live" in argv else script
    assert err.startswith(f"usage: {prog} ") and f"{prog}: error: " in err and message in err, err


def test_live_help_answers_without_torch_or_transformers():
    code, imported, out, err = probe("whisper-at", "--live", "--help")
    assert (code, imported, err) == (0, [], "")
    assert out.startswith("usage: whisper-at --live ") and "--stall-timeout" in out


def test_console_scripts_are_the_light_entry_points():
    config = configparser.ConfigParser()
    config.read(REPO_ROOT / "setup.cfg")
    lines = [line for line in config["options.entry_points"]["console_scripts"].splitlines() if "=" in line]
    scripts = {name.strip(): target.strip() for name, target in (line.split("=") for line in lines)}
    assert set(scripts) == set(entry_points.CONSOLE_SCRIPTS) == set(SCRIPTS)
    for name, target in scripts.items():
        module, function = target.split(":")
        assert module == "whisper_at_hf_cli.entry_points"
        assert getattr(entry_points, function) is entry_points.CONSOLE_SCRIPTS[name]
    # one version: the package's is the light one's, and the distribution's metadata reads it
    import whisper_at_hf

    assert whisper_at_hf.__version__ == __version__
    assert config["metadata"]["version"] == "attr: whisper_at_hf_cli.__version__"


def test_after_parsing_the_command_runs_on_the_parsed_options(tmp_path, capsys):
    """The entry points hand their Namespace to `whisper_at_hf.<command>.run`: its checks after parsing (which need
    the package: model sources, devices, Whisper's languages, the release table) answer as `main`'s do."""
    clip = str(SHARED_AUDIO / "speech_en.wav")
    cases = [
        (entry_points.whisper_at, [clip, "-o", str(tmp_path), "--revision", "v1"], "--revision applies to a Hub id"),
        (entry_points.whisper_at, ["--live", "-", "--language", "klingon"], "language"),
        (entry_points.convert, ["--variant", "smal", "--output", str(tmp_path / "x")], "did you mean 'small'?"),
    ]
    for entry, argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            entry(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err, argv


def test_annotate_entry_runs_the_module_on_the_parsed_options(monkeypatch, tmp_path):
    from whisper_at_hf import annotate

    seen = []
    monkeypatch.setattr(annotate, "start_processes", lambda args: seen.append(args))  # None: ends with exit code 2
    assert entry_points.annotate(["clips/", "-o", str(tmp_path), "--tags-only"]) == 2
    assert seen[0].output_dir == str(tmp_path) and seen[0].label_language == "en"  # check_arguments' default


def test_the_light_package_loads_the_rules_file_of_the_package():
    """`rules` is `whisper_at_hf/option_rules.py` itself (never a copy), loaded alone under another name; `options`
    re-exports that module's checks, so the parsers and the pipeline apply the same rules."""
    from whisper_at_hf import option_rules, options

    assert rules.rules_file().samefile(option_rules.__file__)
    assert rules.rules is rules.load_rules() and rules.rules.__name__ == rules.LOADED_NAME
    assert rules.rules is not option_rules and options.check_num_beams is option_rules.check_num_beams
    for check, value in [("check_num_beams", 0), ("check_tag_threshold", 1.5), ("check_at_time_res", 0.5)]:
        messages = []
        for module in (rules.rules, options):
            with pytest.raises(ValueError) as error:
                getattr(module, check)(value)
            messages.append(str(error.value))
        assert messages[0] == messages[1], check


def test_annotate_still_runs_as_a_module():
    """`torchrun -m whisper_at_hf.annotate` / `accelerate launch -m` start the module itself: its `main` parses."""
    done = subprocess.run([sys.executable, "-m", "whisper_at_hf.annotate", "--version"], capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src")))
    assert done.returncode == 0 and done.stdout.strip() == f"whisper-at-annotate {__version__}", done.stderr[-2000:]
