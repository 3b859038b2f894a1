"""Matrix crossing, exclusions, repetitions and stable ids."""

import pytest

from cowsnap.plan import config, grid
from cowsnap.plan.config import ConfigError


def expand(**experiment):
    return grid.expand(config.validate({"experiments": {"e": experiment}}))


def test_matrix_is_crossed_over_the_base():
    runs = expand(base={"size_mib": 32}, matrix={"method": ["none", "fork"], "writers": [1, 2, 3]})
    assert len(runs) == 6
    assert {(r.point["method"], r.point["writers"]) for r in runs} == {
        (m, w) for m in ("none", "fork") for w in (1, 2, 3)
    }
    assert all(r.point["size_mib"] == 32 for r in runs)


def test_exclusions_and_repetitions():
    runs = expand(
        repetitions=3,
        matrix={"method": ["none", "fork"], "writers": [1, 2]},
        exclude=[{"method": "none", "writers": 2}],
    )
    points = {(r.point["method"], r.point["writers"]) for r in runs}
    assert points == {("none", 1), ("fork", 1), ("fork", 2)}
    assert len(runs) == 9
    assert sorted(r.repetition for r in runs if r.point["method"] == "none") == [0, 1, 2]


def test_ids_are_stable_and_distinct():
    first = expand(matrix={"writers": [1, 2]})
    again = expand(matrix={"writers": [1, 2]})
    assert [r.run_id for r in first] == [r.run_id for r in again]
    assert len({r.point_id for r in first}) == 2
    # The id depends on the point, not on the experiment's other points.
    alone = expand(base={"writers": 2})
    assert alone[0].point_id == next(r.point_id for r in first if r.point["writers"] == 2)


def test_exclude_matching_nothing_is_an_error():
    with pytest.raises(ConfigError, match=r"exclude\[0\].*matches no point"):
        expand(matrix={"writers": [1, 2]}, exclude=[{"writers": 3}])


def test_excluding_everything_is_an_error():
    with pytest.raises(ConfigError, match="every point is excluded"):
        expand(matrix={"writers": [1]}, exclude=[{"writers": 1}])
