"""The synthetic labelled audio set of `training/make_synthetic_data.py` (the README example's data), for the tests."""

from __future__ import annotations

import sys

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "training"))
from make_synthetic_data import CLASSES, MIXTURES, SR, make_clip, write_dataset  # noqa: E402

__all__ = ["CLASSES", "MIXTURES", "SR", "make_clip", "write_dataset"]
