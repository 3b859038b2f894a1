"""How to avoid it, concluded from paired rounds: each lever against its
reference snapshot round by round (cowsnap.analyse.stats.compare_paired and
comparison_table), what the summary says of it (cowsnap.analyse.avoid), and
the reference a config names (cowsnap.plan.grid.references). Real runs of a
recorded default sweep where a spread matters."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cowsnap.analyse import aggregate, stats, summary
from cowsnap.analyse.summary import avoid, levers
from cowsnap.plan import config, grid
from cowsnap.plan.config import ConfigError

SWEEP = Path(__file__).parent / "data" / "results" / "default-sweep"
PLAIN_FORK = {"method": "fork", "populate": "none", "dest": "zeroed"}


def rounds(values) -> pd.Series:
    return pd.Series(values, index=range(len(values)), dtype=float)


def mitigations() -> pd.DataFrame:
    """The recorded sweep's mitigations runs, each lever given its plain
    fork of the same backing as its reference (by settings: the recorded
    ids predate today's keys)."""
    runs = aggregate.read_table(SWEEP / "mitigations-runs.csv")
    keys = ["method", "backing", "populate", "dest"]
    points = runs.drop_duplicates("point_id")
    references = {}
    for _, point in points.iterrows():
        wanted = pd.Series({**point[keys].to_dict(), **PLAIN_FORK})
        match = points[(points[keys] == wanted).all(axis=1)]
        if point["method"] != "none" and len(match) == 1 and match.iloc[0]["point_id"] != point["point_id"]:
            references[point["point_id"]] = match.iloc[0]["point_id"]
    return runs.assign(reference_id=runs["point_id"].map(references).fillna(""))


def reference_runs() -> pd.Series:
    """The plain fork's writers' time on 4 KiB pages, by round: a real spread."""
    runs = mitigations()
    plain = runs[(runs["backing"] == "4k") & (runs["method"] == "fork") & (runs["populate"] == "none")]
    plain = plain[plain["dest"] == "zeroed"]
    return plain.set_index("repetition")["writers_s"].sort_index()


def test_a_lever_better_in_every_one_of_5_rounds_is_resolved_at_the_level_printed():
    reference = rounds([1.0, 1.3, 0.9, 1.1, 1.2])
    lever = reference * rounds([0.9, 0.95, 0.8, 0.97, 0.85])
    compared = stats.compare_paired(lever, reference)
    assert compared["resolved"] and compared["rounds"] == 5
    assert compared["ci_level"] == pytest.approx(0.9375)  # the sign test's: 1 - 2 / 2^5
    # One round the other way: the sign test can no longer reject at 5 rounds.
    worse_once = lever.copy()
    worse_once[2] = reference[2] * 1.01
    assert not stats.compare_paired(worse_once, reference)["resolved"]
    # What the summary prints for it: "better", and the level beside its rounds.
    row = pd.Series({**compared, "better": True, "label": "method=uffd", "reference_label": "method=fork"})
    assert levers.ratio_cell(row).endswith("better")


def test_two_copies_of_one_point_are_not_resolved():
    plain = reference_runs()
    assert len(plain) >= 5
    # The same point's runs, paired with the rounds in reverse order.
    copy = pd.Series(plain.to_numpy()[::-1], index=plain.index)
    compared = stats.compare_paired(copy, plain)
    assert not compared["resolved"]
    assert compared["ci_low"] <= 1 <= compared["ci_high"]


@pytest.mark.parametrize("side", ["above", "below"])
def test_the_detectable_ratio_is_what_a_known_effect_confirms(side):
    plain = reference_runs()
    copy = pd.Series(np.roll(plain.to_numpy(), 1), index=plain.index)  # a copy of the point, rounds shifted
    null = stats.compare_paired(copy, plain)
    assert not null["resolved"]
    detectable = null[f"detectable_{side}"]

    def with_effect(ratio: float) -> dict:
        # The copy moved so that its median ratio is `ratio`: a known effect on the same spread.
        return stats.compare_paired(copy * ratio / null["ratio"], plain)

    beyond, short = (1.02, 0.98) if side == "above" else (0.98, 1.02)
    assert with_effect(detectable * beyond)["resolved"]
    assert not with_effect(detectable * short)["resolved"]


def test_levers_are_compared_with_their_reference_round_by_round_on_a_recorded_sweep():
    runs = mitigations()
    points = stats.point_table(runs)
    table = stats.comparison_table(runs, points)
    uffd = table[(table["label"].str.contains("method=uffd")) & (table["label"].str.contains("backing=4k"))]
    row = uffd[uffd["metric"] == "writers_s"].iloc[0]
    # Its per-round ratios are the lever's run over the reference's of the same round.
    by_round = dict(pair.split(":") for pair in row["round_ratios"].split(";"))
    lever = runs[runs["point_id"] == row["point_id"]].set_index("repetition")["writers_s"]
    plain = runs[runs["point_id"] == row["reference_id"]].set_index("repetition")["writers_s"]
    for repetition, ratio in by_round.items():
        assert float(ratio) == pytest.approx(lever[int(repetition)] / plain[int(repetition)], rel=1e-3)
    assert row["better"] and row["ci_high"] < 1
    # The reference is no lever of itself, and the no-snapshot baseline has none.
    assert not (table["point_id"] == table["reference_id"]).any()
    assert set(table["point_id"]).isdisjoint(set(runs.loc[runs["method"] == "none", "point_id"]))
    text = "\n".join(avoid.how_to_avoid(points, table))
    assert f"| method=uffd | {levers.ratio_cell(row)} |" in text
    answer = "\n".join(avoid.answer_lines(points, table))
    assert f"writers' time: method=uffd, {row['ratio']:.3g}x, {row['ci_low']:.3g}-{row['ci_high']:.3g}" in answer


def test_the_trade_off_set_keeps_every_lever_no_other_beats_on_all_objectives():
    objectives = ["writers_s", "write_max_s", "snapshot_memory_mib"]
    candidates = {
        None: dict.fromkeys(objectives, 1.0),  # the plain fork
        "uffd": {"writers_s": 0.3, "write_max_s": 0.8, "snapshot_memory_mib": 0.5},
        "stop": {"writers_s": 0.2, "write_max_s": 3.0, "snapshot_memory_mib": 0.5},
        "map": {"writers_s": 0.9, "write_max_s": 0.9, "snapshot_memory_mib": 1.0},  # uffd beats it on all
    }
    assert avoid.tradeoff_set(candidates, objectives) == ["uffd", "stop"]


def test_a_reference_must_be_a_point_of_the_experiment(tmp_path):
    experiment = {
        "repetitions": 1,
        "baseline": {"method": "none"},
        "reference": {"method": "fork"},
        "base": {"size_mib": 2},
        "matrix": {"method": ["none", "fork", "uffd"]},
    }
    done = config.validate({"experiments": {"e": experiment}})
    pairs = grid.references(done, "e")
    ids = {point["method"]: grid.point_id(point) for point in grid.experiment_points("e", done["experiments"]["e"])}
    assert pairs == {ids["uffd"]: ids["fork"]}
    with pytest.raises(ConfigError, match=r"config\.experiments\.e\.reference"):
        config_without_fork = {**experiment, "matrix": {"method": ["none", "uffd"]}}
        grid.expand(config.validate({"experiments": {"e": config_without_fork}}))


# A fresh clone's default sweep on this 2-core VM, 2026-12-06, with the 6.1 and 6.12 guests
# (8d49340): every experiment's runs.
SWEEP_0612 = Path(__file__).parent / "data" / "results" / "sweep-2026-12-06"


def recorded_sweep() -> dict[str, pd.DataFrame]:
    runs = pd.concat(
        [aggregate.read_table(path) for path in sorted(SWEEP_0612.glob("*-runs.csv.gz"))], ignore_index=True
    )
    return {"runs": runs, **aggregate.statistics(runs)}


def test_the_recorded_sweep_answers_on_three_objectives_and_names_the_stall():
    tables = recorded_sweep()
    comparisons, runs = tables["comparisons"], tables["runs"]
    mitigations = comparisons[(comparisons["experiment"] == "mitigations") & (comparisons["metric"] == "writers_s")]
    uffd = mitigations[mitigations["label"].str.contains("method=uffd") & mitigations["label"].str.contains("4k")]
    assert uffd.iloc[0]["better"]  # better than the plain fork in every round
    answer = " ".join(summary.the_answer(tables["points"], comparisons, tables["scaling"]))
    for objective in ("writers' time:", "longest write:", "snapshot memory:"):
        assert objective in answer
    assert "method=stop, a stall of up to" in answer
    # The memory a snapshot holds is in every record of every benchmark method (hugetlb: not charged, said so).
    timed = runs[(runs["status"] == "ok") & runs["method"].isin(["none", "fork", "uffd", "stop"])]
    timed = timed[timed["vm_kernel"].fillna("host") == "host"]
    charged = timed["backing"] != "hugetlb-2m"
    assert timed.loc[charged, "snapshot_memory_mib"].notna().all()
    assert timed.loc[~charged, "snapshot_memory_source"].str.startswith("not counted").all()


def nesting(line: str) -> int:
    depth = deepest = 0
    for char in line:
        depth += {"(": 1, ")": -1}.get(char, 0)
        deepest = max(deepest, depth)
    return deepest


def test_the_summary_of_a_recorded_sweep_is_read_in_a_minute():
    tables = recorded_sweep()
    text = summary.build(
        tables["runs"], tables["points"], tables["ratios"], tables["scaling"], tables["comparisons"], tables["model"]
    )
    lines = text.splitlines()
    # The answer in its first 12 lines, the next section after them.
    assert lines[2] == "## The answer" and lines.index("## Machine") <= 13
    assert all(line.startswith("- **") for line in lines[4 : lines.index("## Machine") - 1])
    assert not [line for line in lines if not line.startswith("|") and len(line) > 300]
    assert not [cell for line in lines if line.startswith("|") for cell in line.split(" | ") if len(cell) > 200]
    assert not [line for line in lines if nesting(line) > 1]
    assert "\\|" not in text  # no node type (its fields are split by pipes) inside a label
    assert len(text.encode()) <= 47_500  # at most half of the 95 KB it was on 2026-12-05
