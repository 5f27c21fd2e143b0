"""`whisper_at_hf/option_rules.py`, the number rules of the options, for the parsers' `type=` checks: loaded from its
file, so that `whisper_at_hf/__init__.py` (torch, transformers) does not run.

THE one place this package reaches into `whisper_at_hf` at import time (tests/test_cli_startup.py pins it): Python
runs a package's `__init__` before any of its submodules, so `import whisper_at_hf.option_rules` would cost seconds.
The file imports only the standard library and nothing of its package, which is what makes loading it alone sound;
it is importlib's documented recipe "Importing a source file directly". The rules are never copied here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

RULES_MODULE = "whisper_at_hf.option_rules"
# the name it is loaded under: not RULES_MODULE, which `whisper_at_hf` itself imports (with its package) when it runs
LOADED_NAME = "whisper_at_hf_cli.option_rules"


def rules_file() -> Path:
    """Where `whisper_at_hf/option_rules.py` is, found as Python finds the package (installed, editable or on
    `PYTHONPATH`) without importing it (`find_spec` of a top-level name runs no code of it)."""
    spec = importlib.util.find_spec(RULES_MODULE.partition(".")[0])
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{RULES_MODULE.partition('.')[0]} is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "option_rules.py"


def load_rules() -> ModuleType:
    """The rules module, loaded once per process (later calls get the same module)."""
    if LOADED_NAME in sys.modules:
        return sys.modules[LOADED_NAME]
    spec = importlib.util.spec_from_file_location(LOADED_NAME, rules_file())
    module = importlib.util.module_from_spec(spec)
    sys.modules[LOADED_NAME] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[LOADED_NAME]  # no half-run module for a later call
        raise
    return module


rules = load_rules()

__all__ = ["load_rules", "rules", "rules_file"]
