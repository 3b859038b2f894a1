"""One table of methods (cowsnap/plan/methods.py): the benchmark's methods are
the native files that register a Snapshot under their names, every method
has its line in the docs, and adding one is one table row, one C++ file and
one docs line (docs/adding-a-method.md), shown here by adding one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import undocumented_in_config_md

from cowsnap.measure import native
from cowsnap.plan import config, methods

REPO = Path(__file__).resolve().parent.parent
REGISTERED = re.compile(r'^COWSNAP_METHOD\("(\w+)",', re.MULTILINE)


def registered(native_dir: Path) -> dict[str, str]:
    """Method name -> the native file that registers its Snapshot."""
    found = {}
    for source in sorted((native_dir / "bench").glob("*.cpp")):
        for name in REGISTERED.findall(source.read_text()):
            assert name not in found, f"{name} registered by {found.get(name)} and {source.name}"
            found[name] = source.name
    return found


def snapshot_methods(table: dict) -> set[str]:
    return {name for name, method in table.items() if method.benchmark and method.copies}


def undocumented(table: dict) -> list[str]:
    return undocumented_in_config_md("method", table)


def test_the_benchmark_methods_are_the_native_files_that_register_them():
    files = registered(native.NATIVE_DIR)
    assert set(files) == snapshot_methods(methods.METHODS)
    assert all(source == f"{name}_snapshot.cpp" for name, source in files.items()), files
    assert "none" in methods.BENCHMARK and "none" not in files  # the baseline takes no snapshot


def test_the_schema_allows_exactly_the_tables_methods():
    assert config.point_schema()["method"]["enum"] == list(methods.METHODS)


def test_every_method_has_its_line_in_the_docs():
    assert undocumented(methods.METHODS) == []


ADDED = """
import dataclasses, json, sys
from pathlib import Path
from cowsnap.plan import methods

# The one Python row: a second stop-the-world method.
methods.METHODS["pause"] = dataclasses.replace(methods.METHODS["stop"], description="a stop under another name")

from cowsnap.measure import native  # every list derives from the table as it is now
from cowsnap.measure.bench import runner
from cowsnap.plan import config, grid

cxxflags = config.schema()["properties"]["cxxflags"]["default"]
build = native.build(Path(sys.argv[1]), cxxflags, native_dir=Path(sys.argv[2]))
point = grid.point_of({"method": "pause", "size_mib": 4, "batch_kib": 512, "writers": 1, "copiers": 1})
print(json.dumps(runner.run(point, build)))
"""


def test_adding_a_method_is_one_row_one_file_and_one_docs_line(tmp_path):
    native_dir = tmp_path / "native"
    shutil.copytree(native.NATIVE_DIR, native_dir)
    # The one C++ file: the stop snapshot's, registered under the new name.
    stop = (native_dir / "bench" / "stop_snapshot.cpp").read_text()
    (native_dir / "bench" / "pause_snapshot.cpp").write_text(
        stop.replace("StopSnapshot", "PauseSnapshot").replace('COWSNAP_METHOD("stop"', 'COWSNAP_METHOD("pause"')
    )
    done = subprocess.run(
        [sys.executable, "-c", ADDED, str(tmp_path / "build"), str(native_dir)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(done.stdout.splitlines()[-1])
    assert record["status"] == "ok", record.get("reason")
    assert record["method"] == "pause" and record["snapshot_pause_s"] > 0 and record["writers_s"] > 0
    assert set(registered(native_dir)) == {*snapshot_methods(methods.METHODS), "pause"}
    # The one docs line: without it, the docs check names the method.
    table = {**methods.METHODS, "pause": methods.METHODS["stop"]}
    assert undocumented(table) == ["pause"]


def test_the_benchmark_reports_what_the_table_says_of_each_method(run_point):
    """What only the native method knows (Snapshot::writers_wait and
    samples_sharing) is in every record, and is what the table says."""
    for name in methods.BENCHMARK:
        starts = ("with_child", "after_child") if name in methods.taking("start") else ("with_child",)
        for start in starts:
            point = {"method": name, "start": start, "size_mib": 4, "batch_kib": 512, "writers": 1, "copiers": 1}
            record = run_point(**point)
            assert record["writers_wait"] == methods.writers_wait(point), point
            assert record["samples_sharing"] == (name in methods.taking("sharing_interval_ms")), point
