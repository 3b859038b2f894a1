"""cowsnap calibrate: the harness beside plain C. Relations that hold on any
Linux machine, on small arrays; never absolute times, never the agreement
itself (that is timing, read it in the table)."""

import os

import pandas as pd
import pytest

from cowsnap.measure import native
from cowsnap.measure.bench import calibrate

SIZE_MIB = 16


@pytest.fixture(scope="module")
def measured(build):
    """Both sides, two runs each, on a small array."""
    return calibrate.measure(build, sizes_mib=(SIZE_MIB,), repetitions=2, batch_kib=1024)


def test_c_program_prints_every_key(build):
    values = calibrate.c_program(build.directory, SIZE_MIB, 1024)
    assert set(calibrate.KEYS) <= set(values)
    assert values["pages"] == SIZE_MIB * 2**20 // os.sysconf("SC_PAGE_SIZE")
    assert all(values[key] > 0 for key in calibrate.KEYS)


def test_harness_measures_the_same_keys(measured):
    harness = measured[measured["side"] == "harness"]
    c = measured[measured["side"] == "plain_c"]
    assert len(harness) == len(c) == 2
    assert (harness["pages"].to_numpy() == c["pages"].to_numpy()).all()


@pytest.mark.parametrize("side", calibrate.SIDES)
def test_a_copy_fault_costs_more_than_a_reuse_fault(measured, side):
    medians = measured[measured["side"] == side][["reuse_ns_per_page", "copy_ns_per_page"]].median()
    assert medians["copy_ns_per_page"] > medians["reuse_ns_per_page"] > 0, medians.to_dict()


def test_sides_alternate(measured):
    assert list(measured["side"]) == list(calibrate.SIDES) * 2


def test_table_has_both_sides_for_every_quantity(measured):
    summary = calibrate.table(measured)
    assert list(summary.columns) == ["size_mib", "quantity", *calibrate.SIDES, "ratio", "ratio_threads", "explanation"]
    assert list(summary["quantity"]) == list(calibrate.QUANTITIES)
    assert summary[[*calibrate.SIDES, "ratio", "ratio_threads"]].notna().all().all()
    assert (summary[list(calibrate.SIDES)] > 0).all().all()
    text = calibrate.format_table(summary)
    for label in calibrate.QUANTITIES.values():
        assert label in text


def test_table_is_medians_and_ratio():
    """Synthetic runs: the table's arithmetic, no timing."""
    rows = []
    for side, scale in (("plain_c", 1.0), ("plain_c_threads", 1.5), ("harness", 2.0)):
        for repetition, value in enumerate((1.0, 3.0, 100.0)):
            rows.append(
                {"size_mib": 8, "side": side, "repetition": repetition}
                | {quantity: scale * value for quantity in calibrate.QUANTITIES}
            )
    summary = calibrate.table(pd.DataFrame(rows))
    assert (summary["plain_c"] == 3.0).all()
    assert (summary["harness"] == 6.0).all()
    assert (summary["ratio"] == 2.0).all()
    assert (summary["ratio_threads"] == 2.0 / 1.5).all()


def test_both_sides_start_warm_and_record_the_fresh_page_probe(measured):
    warm = calibrate.warm_mib_of(SIZE_MIB, 1024)
    assert warm == 3 * SIZE_MIB  # the array, the child's copy, the writer's COW copies
    assert (measured["warm_mib"] == warm).all()
    assert (measured["fresh_page_us"] > 0).all()


def gap_runs(harness: float, plain_threads: float = 1.0, fresh=(1.0, 1.0), reported=(0, 0)) -> pd.DataFrame:
    """Three runs a side of one quantity; plain C's are 0.95-1.05."""
    rows = []
    for side, values, probe, kib in (
        ("plain_c", (0.95, 1.0, 1.05), fresh[1], reported[1]),
        ("plain_c_threads", (plain_threads,) * 3, fresh[1], reported[1]),
        ("harness", (harness,) * 3, fresh[0], reported[0]),
    ):
        for repetition, value in enumerate(values):
            machine = {"fresh_page_us": probe, "host_reported_kib": kib}
            quantities = {quantity: value for quantity in calibrate.QUANTITIES}
            rows.append({"size_mib": 64, "side": side, "repetition": repetition} | machine | quantities)
    return pd.DataFrame(rows)


def explained(runs: pd.DataFrame) -> str:
    return calibrate.table(runs)["explanation"].iloc[0]


def test_a_gap_over_ten_percent_is_explained_by_what_was_measured_or_said_unexplained():
    assert explained(gap_runs(1.09)) == ""
    assert explained(gap_runs(1.3)).startswith("unexplained: the machine measured no such difference (1.00 µs")
    assert explained(gap_runs(1.3, plain_threads=1.35)) == "within plain C's own two sides, which differ by +35%"
    assert explained(gap_runs(1.3, fresh=(2.0, 1.0))).startswith("the machine: 2.00 µs a fresh page in the harness's")
    # A costlier fresh page on plain C's side cannot explain a slower harness.
    assert explained(gap_runs(1.3, fresh=(1.0, 2.0))).startswith("unexplained")
    assert explained(gap_runs(0.7, fresh=(1.0, 2.0))).startswith("the machine:")
    array_kib = 64 * 1024
    assert explained(gap_runs(1.3, reported=(0.2 * array_kib, 0))).startswith("the machine: 13,107 KiB reported")
    assert explained(gap_runs(1.3, reported=(0.05 * array_kib, 0))).startswith("unexplained")
    wide = gap_runs(1.3)
    wide.loc[(wide["side"] == "plain_c") & (wide["repetition"] == 2), list(calibrate.QUANTITIES)] = 1.4
    assert explained(wide) == "within plain C's own runs (0.950-1.4)"


def test_missing_program_is_named(tmp_path):
    with pytest.raises(calibrate.CalibrationError, match="cowsnap-calibrate: missing"):
        calibrate.c_program(tmp_path, SIZE_MIB, 1024)


def test_a_point_not_ok_names_the_point_and_its_reason(monkeypatch, tmp_path):
    monkeypatch.setattr(calibrate.runner, "run", lambda point, build: {"status": "skipped", "reason": "no such knob"})
    monkeypatch.setattr(calibrate.config, "validate_point", lambda settings: settings)
    with pytest.raises(calibrate.CalibrationError, match="'write'.*method=none.*skipped: no such knob"):
        calibrate.harness(native.Build(tmp_path / native.LIBRARY), SIZE_MIB, 1024)


def test_command_line_writes_the_table(build, tmp_path, capsys):
    out = tmp_path / "calibration"
    argv = ["--sizes", str(SIZE_MIB), "--repetitions", "1", "--batch-kib", "1024"]
    assert calibrate.main([*argv, "--build-dir", str(build.directory.parent), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| size (MiB) |" in printed
    assert (out / "calibration.md").read_text() == printed
    assert set(pd.read_csv(out / "calibration.csv")["side"]) == set(calibrate.SIDES)
