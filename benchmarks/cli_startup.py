"""How fast the console scripts answer `--help`, `--version` and an option error (issue 21, section 4), next to what
`import whisper_at_hf` costs (torch, transformers, the registrations), measured side by side in one run.

Each contender is a fresh interpreter (as a console script is), run in turns (A B C ..., then reversed) so machine
drift hits all alike; the table gives the median and range of seconds and of the per-turn ratio to the import. Rows,
besides the import and an interpreter that does nothing (`python -c pass`, the floor):

* `light`: the console-script function (`whisper_at_hf_cli.entry_points`, what setup.cfg's scripts call);
* `installed` (with `--bin`): the console script itself, the wrapper pip wrote;
* `main`: the same command through `whisper_at_hf.<command>.main` (how the scripts started before: the package first),
  for `--help` only unless `--all-main`.

    python benchmarks/cli_startup.py                   # 5 turns
    python benchmarks/cli_startup.py --repeats 9 --all-main
    python benchmarks/cli_startup.py --bin /path/to/venv/bin   # also the installed scripts themselves
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from _common import REPO_ROOT, interleaved, machine, median, ratios, summary

CASES = {  # console script -> (its `whisper_at_hf` module, an option error)
    "whisper-at": ("cli", ["a.wav", "--num-beams", "0"]),
    "whisper-at-annotate": ("annotate", ["x", "-o", "out", "--at-time-res", "0.5"]),
    "whisper-at-convert": ("convert_original_whisper_at", ["--dtype", "float64"]),
    "whisper-at-demo": ("demo", ["--port", "http"]),
}
LIGHT = "import sys; from whisper_at_hf_cli.entry_points import CONSOLE_SCRIPTS; sys.exit(CONSOLE_SCRIPTS[{!r}]({!r}))"
MAIN = "import sys; from whisper_at_hf.{} import main; sys.exit(main({!r}))"
IMPORT = "import whisper_at_hf"


def command(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def runner(argv: list[str], expect: int):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "src"))  # this checkout

    def run() -> None:
        done = subprocess.run(argv, capture_output=True, env=env, timeout=600)
        if done.returncode != expect:
            raise RuntimeError(f"{argv}: exit {done.returncode}, expected {expect}: {done.stderr[-500:]!r}")

    return run


def contenders(all_main: bool, bin_dir: Path | None) -> dict[str, object]:
    # the floor: an interpreter that starts and exits; then what every heavy answer pays
    found = {"python -c pass": runner(command("pass"), 0), "import whisper_at_hf": runner(command(IMPORT), 0)}
    for script, (module, error) in CASES.items():
        for label, argv, expect in (("--help", ["--help"], 0), ("--version", ["--version"], 0), ("error", error, 2)):
            found[f"{script} {label}: light"] = runner(command(LIGHT.format(script, argv)), expect)
            if all_main or label == "--help":
                found[f"{script} {label}: main"] = runner(command(MAIN.format(module, argv)), expect)
            if bin_dir is not None:
                found[f"{script} {label}: installed"] = runner([str(bin_dir / script), *argv], expect)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--all-main", action="store_true", help="time every case through whisper_at_hf too")
    parser.add_argument("--bin", type=Path, default=None, help="a venv's bin folder with the installed scripts")
    args = parser.parse_args()
    print(machine())
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} (1, 5 min); {args.repeats} turns\n")
    times = interleaved(contenders(args.all_main, args.bin), args.repeats, warmup=1)
    baseline = times["import whisper_at_hf"]
    print(f"{'command':48} {'seconds: median [range]':>26} {'/ import whisper_at_hf':>26}")
    for name, seconds in times.items():
        print(f"{name:48} {summary(seconds):>26} {summary(ratios(seconds, baseline)):>26}")
    light = [median(seconds) for name, seconds in times.items() if name.endswith(": light")]
    print(f"\nslowest light answer: {max(light):.3f} s (median); import whisper_at_hf: {median(baseline):.3f} s")


if __name__ == "__main__":
    main()
