"""One table of write patterns (cowsnap/plan/patterns.py): the benchmark's
patterns are the cases of PATTERN_CASES in native/bench/writers.cpp, every
pattern has its words in the docs, and adding one is one table row, one C++
case and one docs line, shown here by adding one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import undocumented_in_config_md

from cowsnap.measure import native
from cowsnap.plan import config, patterns

REPO = Path(__file__).resolve().parent.parent
CASE = re.compile(r'^\s*\{"(\w+)", PatternCase::(\w+),', re.MULTILINE)
CASES_END = "\n};\n\nconst PatternCase& pattern_case"


def cases(native_dir: Path) -> dict[str, str]:
    """Pattern name -> its stride, from the native cases."""
    return dict(CASE.findall((native_dir / "bench" / "writers.cpp").read_text()))


def undocumented(table: dict) -> list[str]:
    return undocumented_in_config_md("pattern", table)


def test_the_native_cases_are_the_tables_patterns():
    found = cases(native.NATIVE_DIR)
    assert list(found) == list(patterns.PATTERNS)
    assert {name: stride != "drawn" for name, stride in found.items()} == {
        name: row.strided for name, row in patterns.PATTERNS.items()
    }


def test_the_skewed_patterns_constants_are_the_native_ones():
    source = (native.NATIVE_DIR / "bench" / "writers.cpp").read_text()
    native_values = dict(re.findall(r"constexpr double (HOT_\w+) = ([\d.]+);", source))
    assert {name: float(value) for name, value in native_values.items()} == {
        "HOT_FRACTION": patterns.HOT_FRACTION,
        "HOT_SHARE": patterns.HOT_SHARE,
    }


def test_the_schema_allows_exactly_the_tables_patterns():
    entry = config.point_schema()["pattern"]
    assert entry["enum"] == list(patterns.PATTERNS)
    assert all(row.description in entry["description"] for row in patterns.PATTERNS.values())


def test_every_pattern_has_its_line_in_the_docs():
    assert undocumented(patterns.PATTERNS) == []


ADDED = """
import json, sys
from pathlib import Path
from cowsnap.plan import patterns

# The one Python row: every write to the array's first page.
patterns.PATTERNS["first_page"] = patterns.Pattern("every write to the first page", strided=False)

from cowsnap.measure import native  # every list derives from the table as it is now
from cowsnap.measure.bench import runner
from cowsnap.plan import config, grid

cxxflags = config.schema()["properties"]["cxxflags"]["default"]
build = native.build(Path(sys.argv[1]), cxxflags, native_dir=Path(sys.argv[2]))
point = grid.point_of({"method": "fork", "pattern": "first_page", "size_mib": 4, "batch_kib": 512, "writers": 1,
                       "copiers": 1, "backing": "4k", "release": "none", "passes": 2})
print(json.dumps(runner.run(point, build)))
"""


def test_adding_a_pattern_is_one_row_one_case_and_one_docs_line(tmp_path):
    native_dir = tmp_path / "native"
    shutil.copytree(native.NATIVE_DIR, native_dir)
    # The one C++ case: every write to page 0.
    writers = native_dir / "bench" / "writers.cpp"
    source = writers.read_text()
    assert source.count(CASES_END) == 1
    case = '\n    {"first_page", PatternCase::drawn, [](std::uint64_t, std::size_t) -> std::size_t { return 0; }},'
    writers.write_text(source.replace(CASES_END, case + CASES_END))
    done = subprocess.run(
        [sys.executable, "-c", ADDED, str(tmp_path / "build"), str(native_dir)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout.splitlines()[-1])
    assert record["status"] == "ok", record.get("reason")
    assert record["pattern"] == "first_page"
    # Its writes are where the case sends them: one page, faulted once while
    # the child lived (4 KiB pages, nothing released before the exit).
    assert record["pages_written"] == 1
    assert record["writer_minflt_during_snapshot"] < 50
    assert cases(native_dir)["first_page"] == "drawn"
    # The one docs line: without it, the docs check names the pattern.
    table = {**patterns.PATTERNS, "first_page": patterns.PATTERNS["random"]}
    assert undocumented(table) == ["first_page"]
