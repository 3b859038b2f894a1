"""cowsnap calibrate and the seed match: the harness beside plain C, paired
round by round. Relations that hold on any Linux machine, on small arrays;
never absolute times, never the agreement itself (that is timing, read it in
the table); the paired verdict on synthetic rounds."""

import os

import numpy as np
import pandas as pd
import pytest

from cowsnap import cli
from cowsnap.analyse import calibration
from cowsnap.measure import native
from cowsnap.measure.bench import calibrate

# Each write phase lasts tens of milliseconds at this size: at 16 MiB (4 ms
# a phase) a host taking back freed memory during one phase once doubled
# that phase's time and turned the copy-reuse order.
SIZE_MIB = 64
ROUNDS = 3


@pytest.fixture(scope="module")
def measured(build):
    """Every side, three rounds, on a small array."""
    return calibrate.measure(build, sizes_mib=(SIZE_MIB,), repetitions=ROUNDS, batch_kib=1024)


def test_c_program_prints_every_key(build):
    values = calibrate.c_program(build.directory, SIZE_MIB, 1024)
    assert set(calibrate.KEYS) <= set(values)
    assert values["pages"] == SIZE_MIB * 2**20 // os.sysconf("SC_PAGE_SIZE")
    assert all(values[key] > 0 for key in calibrate.KEYS)


def test_harness_measures_the_same_keys(measured):
    harness = measured[measured["side"] == "harness"]
    c = measured[measured["side"] == "plain_c"]
    assert len(harness) == len(c) == ROUNDS
    assert (harness["pages"].to_numpy() == c["pages"].to_numpy()).all()


@pytest.mark.parametrize("side", calibrate.SIDES)
def test_a_copy_fault_costs_more_than_a_reuse_fault(measured, side):
    medians = measured[measured["side"] == side][["reuse_ns_per_page", "copy_ns_per_page"]].median()
    assert medians["copy_ns_per_page"] > medians["reuse_ns_per_page"] > 0, medians.to_dict()


def test_rounds_alternate_the_order_of_the_sides(measured):
    """Round k is one run of each side, forward in even rounds, backward in odd ones."""
    forward, backward = list(calibrate.SIDES), list(reversed(calibrate.SIDES))
    assert list(measured["side"]) == forward + backward + forward
    assert list(measured["repetition"]) == [k for k in range(ROUNDS) for _ in calibrate.SIDES]


def test_of_any_two_sides_each_runs_first_in_every_other_round():
    """The order both yardsticks use (the seed match: seed and cowsnap)."""
    for sides in (calibrate.SIDES, ("seed", "cowsnap")):
        orders = [calibrate.round_order(sides, k) for k in range(4)]
        assert all(sorted(order) == sorted(sides) for order in orders)
        for a, b in ((a, b) for a in sides for b in sides if a != b):
            firsts = [order.index(a) < order.index(b) for order in orders]
            assert firsts == [firsts[0], not firsts[0]] * 2, (a, b, orders)


def test_table_has_every_side_and_a_paired_verdict_for_every_quantity(measured):
    summary = calibration.table(measured)
    assert list(summary.columns) == list(calibration.COLUMNS)
    assert list(summary["quantity"]) == list(calibrate.QUANTITIES)
    assert summary[[*calibrate.SIDES, "ratio", "ratio_low", "ratio_high", "ratio_threads"]].notna().all().all()
    assert (summary[list(calibrate.SIDES)] > 0).all().all()
    # The forks' times are never 0: every round gives a ratio, and 3 rounds give [min, max] at 1 - 2 / 8.
    forks = summary[summary["quantity"].isin(["fork_ms_per_gib", "fork_empty_ms"])]
    assert (forks["rounds"] == ROUNDS).all()
    assert (forks["ratio_level"] == 0.75).all()
    assert forks["verdict"].str.match("a bias: |noise the runs cannot resolve: ").all(), forks["verdict"]
    # A fault's cost is a difference of two times, which noise can take to 0 or below in a round: no ratio
    # then, and the verdict says so.
    faults = summary[~summary.index.isin(forks.index)]
    for row in faults.itertuples():
        assert row.verdict.startswith(
            ("a bias: ", "noise the runs cannot resolve: ", f"too few rounds to judge: {row.rounds} ")
        ), row.verdict
        without = ROUNDS - row.rounds
        assert without == 0 or row.verdict.endswith(
            f"; {without} round(s) gave no ratio (the reference not above 0, or a side missing)"
        )
    text = calibration.format_table(summary)
    for label in calibrate.QUANTITIES.values():
        assert label in text


def rounds_of(plain_c, harness, plain_c_threads=None, size_mib=8) -> pd.DataFrame:
    """Synthetic runs: one row per round and side, every quantity the given value."""
    rows = []
    threads = plain_c if plain_c_threads is None else plain_c_threads
    for side, values in (("plain_c", plain_c), ("plain_c_threads", threads), ("harness", harness)):
        for repetition, value in enumerate(values):
            rows.append(
                {"size_mib": size_mib, "side": side, "repetition": repetition}
                | {quantity: value for quantity in calibrate.QUANTITIES}
            )
    return pd.DataFrame(rows)


def test_table_is_medians_and_the_median_of_per_round_ratios():
    """Synthetic runs: the table's arithmetic, no timing. The ratio is paired:
    the median of the rounds' ratios (2.0, 4.0, 0.5), not the ratio of the
    medians (6 / 3)."""
    summary = calibration.table(rounds_of((1.0, 3.0, 100.0), (2.0, 12.0, 50.0), plain_c_threads=(1.0, 6.0, 200.0)))
    assert (summary["plain_c"] == 3.0).all()
    assert (summary["harness"] == 12.0).all()
    assert (summary["ratio"] == 2.0).all()
    assert (summary["ratio_low"] == 0.5).all()
    assert (summary["ratio_high"] == 4.0).all()
    assert (summary["ratio_threads"] == 2.0).all()  # 2.0, 2.0, 0.25
    assert (summary["ratio_threads_low"] == 0.25).all()


# Five rounds on a noisy machine: the rounds differ by up to five times,
# far more than the sides within a round.
NOISY = (1.0, 3.0, 2.0, 5.0, 1.5)


def test_one_side_slower_in_every_round_is_a_bias_at_93_75_percent():
    slower = (1.01, 1.2, 1.05, 1.3, 1.02)
    harness = [value * factor for value, factor in zip(NOISY, slower, strict=True)]
    assert min(NOISY) < np.median(harness) < max(NOISY)  # unpaired, the harness's median is inside plain C's runs
    row = calibration.table(rounds_of(NOISY, harness)).iloc[0]
    assert row["bias"] == 1
    assert row["ratio_level"] == 1 - 2 / 2**5 == 0.9375
    assert row["verdict"] == "a bias: every round's ratio is above 1 (interval 1.01-1.30 at 93.75%)"
    faster = calibration.table(rounds_of(harness, NOISY)).iloc[0]
    assert faster["bias"] == -1
    assert faster["verdict"] == "a bias: every round's ratio is below 1 (interval 0.77-0.99 at 93.75%)"


def identical_sides(rounds: int = 5, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two sides from one distribution: the same runs, shuffled against themselves."""
    rng = np.random.default_rng(seed)
    runs = rng.lognormal(0.0, 0.4, rounds)
    return runs, rng.permutation(runs)


def test_sides_from_one_distribution_are_noise():
    plain_c, harness = identical_sides()
    row = calibration.table(rounds_of(plain_c, harness)).iloc[0]
    assert row["bias"] == 0
    assert row["ratio_low"] < 1 < row["ratio_high"]
    assert row["verdict"].startswith(
        f"noise the runs cannot resolve: the interval {row['ratio_low']:.2f}-{row['ratio_high']:.2f} (at 93.75%) "
        "holds 1; these runs could resolve a ratio outside ["
    )


def test_the_level_is_true_sides_from_one_distribution_are_a_bias_one_time_in_sixteen():
    """Independent rounds of two sides from one distribution: each round's
    ratio is above 1 with probability 1/2, so 5 rounds are called a bias
    with probability 2 / 2**5 = 1 - 93.75%."""
    rng = np.random.default_rng(7)
    trials = 4000
    biases = sum(
        calibration.paired(rng.lognormal(0, 0.4, 5), rng.lognormal(0, 0.4, 5)).bias != 0 for _ in range(trials)
    )
    assert abs(biases / trials - 1 / 16) < 4 * (1 / 16 * 15 / 16 / trials) ** 0.5, biases


def test_an_effect_beyond_the_resolvable_bounds_is_resolved_and_one_within_is_not():
    """Multiply one side by the effect that moves the median ratio just
    past each bound (a ratio r is resolved past M / L above, M / H below)."""
    plain_c, harness = identical_sides(seed=4)
    row = calibration.table(rounds_of(plain_c, harness)).iloc[0]
    assert row["bias"] == 0 and abs(row["ratio"] - 1) > 0.1  # noise, its median M far enough from 1 to matter
    below, above = row["resolvable_below"], row["resolvable_above"]
    assert below < 1 < above
    assert row["verdict"].endswith(f"could resolve a ratio outside [{below:.2f}, {above:.2f}]")
    for bound, bias in ((above, 1), (below, -1)):
        for nudge, resolved in ((1.01, True), (0.99, False)) if bias > 0 else ((0.99, True), (1.01, False)):
            effect = bound * nudge / row["ratio"]  # the new median ratio: bound * nudge
            shifted = calibration.table(rounds_of(plain_c, harness * effect)).iloc[0]
            assert shifted["ratio"] == pytest.approx(bound * nudge)
            assert shifted["bias"] == (bias if resolved else 0), (bound, nudge, shifted["verdict"])


def test_a_bias_interval_never_reads_as_holding_1():
    row = calibration.table(rounds_of((1.0, 1.0, 1.0), (0.6, 0.996, 0.8))).iloc[0]
    assert row["verdict"] == "a bias: every round's ratio is below 1 (interval 0.600-0.996 at 75%)"


def test_too_few_rounds_get_no_verdict():
    row = calibration.table(rounds_of((1.0, 1.0), (2.0, 2.0))).iloc[0]
    assert row["ratio"] == 2.0
    assert row["bias"] == 0
    assert row["verdict"] == "too few rounds to judge: 2 (a verdict needs 3)"


def test_a_round_whose_reference_is_not_above_0_gives_no_ratio_and_is_counted():
    """A fault's cost per page is a difference of two times: noise can take
    plain C's to 0 or below in a round."""
    row = calibration.table(rounds_of((1.0, -0.5, 1.0, 1.0), (2.0, 2.0, 2.0, 2.0))).iloc[0]
    assert row["rounds"] == 3
    assert row["verdict"] == (
        "a bias: every round's ratio is above 1 (interval 2.00-2.00 at 75%); "
        "1 round(s) gave no ratio (the reference not above 0, or a side missing)"
    )


def test_a_bias_beyond_a_limit_is_an_interval_entirely_outside_the_band():
    assert calibration.paired((1.12, 1.2, 1.3), (1, 1, 1)).beyond(0.10)
    assert calibration.paired((0.8, 0.85, 0.89), (1, 1, 1)).beyond(0.10)
    assert not calibration.paired((1.05, 1.2, 1.3), (1, 1, 1)).beyond(0.10)  # a bias, but reaching into the band
    assert not calibration.paired((0.9, 1.2, 1.3), (1, 1, 1)).beyond(0.10)  # noise
    assert not calibration.paired((1.12, 1.2), (1, 1)).beyond(0.10)  # too few rounds


def test_the_seed_match_exits_1_only_on_a_bias_beyond_its_limit():
    import bench_seed_match

    def measured(writers):
        seed = {key: [0.2, 0.3, 0.25, 0.35, 0.22] for key in bench_seed_match.SHOWN}
        cowsnap = {key: list(seed[key]) for key in seed}
        cowsnap["writers_s"] = [value * factor for value, factor in zip(seed["writers_s"], writers, strict=True)]
        return {"seed": seed, "cowsnap": cowsnap}

    lines, status = bench_seed_match.judge(measured((1.12, 1.2, 1.15, 1.3, 1.11)))
    assert status == 1
    assert any("writers_s" in line and "a bias: every round's ratio is above 1" in line for line in lines)
    assert "writers_s: a bias beyond the ±10% limit" in lines[-1]
    lines, status = bench_seed_match.judge(measured((1.05, 1.2, 1.15, 1.3, 1.11)))  # a bias within reach of 10%
    assert status == 0
    assert "no paired interval lies entirely outside its band" in lines[-1]
    lines, status = bench_seed_match.judge(measured((0.9, 1.2, 1.15, 1.3, 1.11)))  # noise
    assert status == 0
    assert any("writers_s" in line and "noise the runs cannot resolve" in line for line in lines)


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
    return calibration.table(runs)["explanation"].iloc[0]


def test_a_bias_over_ten_percent_is_explained_by_what_was_measured_or_said_unexplained():
    assert explained(gap_runs(1.09)) == ""  # a bias (every round above 1), within 10%
    assert explained(gap_runs(1.3)).startswith("unexplained: the machine measured no such difference (1.00 µs")
    assert explained(gap_runs(1.3, plain_threads=1.35)) == (
        "within plain C's own two sides, which differ by +35% (paired)"
    )
    assert explained(gap_runs(1.3, fresh=(2.0, 1.0))).startswith("the machine: 2.00 µs a fresh page in the harness's")
    # A costlier fresh page on plain C's side cannot explain a slower harness.
    assert explained(gap_runs(1.3, fresh=(1.0, 2.0))).startswith("unexplained")
    assert explained(gap_runs(0.7, fresh=(1.0, 2.0))).startswith("the machine:")
    array_kib = 64 * 1024
    assert explained(gap_runs(1.3, reported=(0.2 * array_kib, 0))).startswith("the machine: 13,107 KiB reported")
    assert explained(gap_runs(1.3, reported=(0.05 * array_kib, 0))).startswith("unexplained")
    # One round where plain C was slower: the paired interval holds 1, noise, nothing to explain.
    wide = gap_runs(1.3)
    wide.loc[(wide["side"] == "plain_c") & (wide["repetition"] == 2), list(calibrate.QUANTITIES)] = 1.4
    row = calibration.table(wide).iloc[0]
    assert row["ratio"] == 1.3 and row["bias"] == 0
    assert row["verdict"].startswith("noise the runs cannot resolve: the interval 0.93-1.37 (at 75%) holds 1")
    assert row["explanation"] == ""


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
    argv = ["calibrate", "--sizes", str(SIZE_MIB), "--repetitions", "1", "--batch-kib", "1024"]
    assert cli.main([*argv, "--build-dir", str(build.directory.parent), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("Paired: 1 round(s) per size")
    assert "| size (MiB) |" in printed
    assert "too few rounds to judge: 1 (a verdict needs 3)" in printed
    assert (out / "calibration.md").read_text() == printed
    assert set(pd.read_csv(out / "calibration.csv")["side"]) == set(calibrate.SIDES)
