"""A real Snakemake run of a tiny config, in a temporary folder."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from run_workflow import snakemake

REPO = Path(__file__).resolve().parent.parent

TINY = """
experiments:
  tiny:
    repetitions: 2
    baseline: {method: none}
    base: {size_mib: 8, batch_kib: 512, memcpy_mib: 8}
    matrix:
      method: [none, fork]
  other:
    base: {size_mib: 4, batch_kib: 512, memcpy_mib: 0, numa_mem: "bind:1023"}
"""


def test_tiny_sweep_produces_table_and_figures(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(TINY)
    done = snakemake("--cores", "2", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    results = tmp_path / "results"
    table = pd.read_csv(results / "tiny" / "runs.csv")
    assert len(table) == 4
    assert set(table["status"]) == {"ok"}
    assert sorted(table["method"]) == ["fork", "fork", "none", "none"]
    assert {"writers_s", "pgfault", "pgreuse", "copies", "reuses", "cxxflags", "cppyy_version"} <= set(table)
    for figure in ("writers_time", "writer_faults", "kernel_time", "ratios", "copy_bandwidth"):
        for ext in ("png", "pdf"):
            assert (results / "figures" / f"tiny-{figure}.{ext}").stat().st_size > 1000
        sidecar = json.loads((results / "figures" / f"tiny-{figure}.json").read_text())
        assert sidecar["rows"] == 4 and len(sidecar["config_hash"]) == 12
        assert "tiny" in (results / "figures" / f"tiny-{figure}.caption.txt").read_text()
    points = pd.read_csv(results / "tiny" / "points.csv")
    assert len(points) == 2 and (points["n"] == 2).all()
    # Two runs a point: the median is their mean and its distribution-free interval is [min, max].
    by_point = table.groupby("point_id")["writers_s"]
    points = points.set_index("point_id")
    assert points["writers_s"].to_dict() == pytest.approx(by_point.median().to_dict())
    assert points["writers_s_ci_low"].to_dict() == pytest.approx(by_point.min().to_dict())
    assert points["writers_s_ci_high"].to_dict() == pytest.approx(by_point.max().to_dict())
    ratios = pd.read_csv(results / "tiny" / "ratios.csv")
    assert set(ratios["better"]) == {"lower"} and len(ratios[ratios["metric"] == "writers_s"]) == 1
    # Timed runs went in the recorded, shuffled schedule order.
    records = sorted((json.loads(p.read_text()) for p in results.glob("*/p*/*.json")), key=lambda r: r["started_at"])
    assert [r["schedule_position"] for r in records] == list(range(5))
    # The point that cannot run here is listed in the summary with its reason.
    summary = (results / "summary.md").read_text()
    assert "NUMA node 1023 does not exist" in summary
    assert "tiny: method=fork" in summary
    # A second run finds everything done: records are reused, nothing reruns.
    again = snakemake("--cores", "2", "--dry-run", cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr
    report = snakemake("--report", "report.html", cwd=tmp_path)
    assert report.returncode == 0, report.stdout + report.stderr
    assert (tmp_path / "report.html").stat().st_size > 10_000


def test_compile_error_fails_the_build_rule_with_diagnostics(tmp_path):
    from cowsnap.measure import native

    broken = tmp_path / "native"
    shutil.copytree(native.NATIVE_DIR, broken)
    harness = broken / "bench" / "harness.cpp"
    harness.write_text(harness.read_text() + "\nint broken( { \n")
    try:
        native.build(tmp_path / "out", "-O2 -std=c++17", broken)
    except native.BuildError as error:
        assert "harness.cpp" in str(error) and "error" in str(error)
    else:
        raise AssertionError("a broken source built")


def test_lint_is_clean():
    done = snakemake("--lint", cwd=REPO)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Lints for" not in output, output


def test_build_key_follows_sources_flags_and_cpu_for_native(monkeypatch):
    from cowsnap.measure import environment, native

    portable = native.build_key("-O2 -std=c++17")
    assert portable == native.build_key("-O2 -std=c++17")
    assert portable != native.build_key("-O3 -std=c++17")
    tuned = native.build_key("-O2 -march=native")
    # A node with another CPU (which this machine cannot be) gets another
    # build when the flags tune for the CPU, and the same portable one.
    monkeypatch.setattr(environment, "cpu_model", lambda: "another CPU")
    assert native.build_key("-O2 -march=native") != tuned
    assert native.build_key("-O2 -std=c++17") == portable


def test_a_run_loads_the_build_and_never_builds(tmp_path, build):
    from cowsnap.measure import native

    assert native.built(build.library, "-O2 -std=c++17", "build.log").library == build.library
    empty = tmp_path / "key"
    empty.mkdir()
    with pytest.raises(native.BuildError, match="build.log"):
        native.built(empty / native.LIBRARY, "-O2 -std=c++17", "build.log")
    assert list(empty.iterdir()) == []  # nothing was built
