"""The code's structure: the harness measures every method the same way,
asking the method's Snapshot, never its name."""

from __future__ import annotations

import re
from pathlib import Path

from cowsnap.plan import config

REPO = Path(__file__).resolve().parent.parent


def test_harness_names_no_method():
    harness = (REPO / "native" / "harness.cpp").read_text()
    methods = [m for m in config.point_schema()["method"]["enum"] if m != "watch"]
    named = [m for m in methods if re.search(rf'"{re.escape(m)}"|Method::{re.escape(m)}\b', harness)]
    assert not named, f"native/harness.cpp names the methods {named}: ask the Snapshot instead"
