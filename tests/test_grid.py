"""Matrix crossing, exclusions, repetitions and stable ids."""

from pathlib import Path

import pytest

from cowsnap.plan import config, grid, threads
from cowsnap.plan.config import ConfigError

REPO = Path(__file__).resolve().parent.parent


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


def test_auto_threads_fit_the_cores_and_the_record_says_when_a_point_does_not():
    for cpus, (writers, copiers) in {1: (1, 1), 2: (1, 1), 3: (1, 2), 8: (4, 4), 28: (14, 14)}.items():
        point = threads.resolve({"writers": "auto", "copiers": "auto"}, cpus)
        assert (point["writers"], point["copiers"]) == (writers, copiers)
    assert threads.resolve({"writers": 3, "copiers": "auto"}, 8)["copiers"] == 5
    fork = {"method": "fork", "writers": 2, "copiers": 2, "start": "with_child", "populate": "none"}
    assert threads.runnable_threads(fork) == 4
    assert threads.runnable_threads({**fork, "start": "after_child"}) == 2  # the copy is over
    assert threads.runnable_threads({**fork, "method": "stop", "copiers": 3}) == 3  # writers pause
    assert threads.runnable_threads({**fork, "populate": "write-after-release"}) == 5
    assert threads.runnable_threads({**fork, "method": "none"}) == 2
    assert threads.runnable_threads({"method": "watch"}) == 0
    assert threads.runnable_threads({**fork, "method": "uffd", "start": "after_child"}) == 4  # uffd copies beside them


def test_the_seed_keeps_its_own_threads_and_the_rest_of_the_default_sweep_fits_the_cores():
    runs = grid.expand(config.validate(config.read_yaml(REPO / "config" / "config.yaml")))
    cpus = threads.usable_cpus()
    for run in runs:
        if run.point["method"] == "watch":
            continue
        if run.experiment == "seed":
            assert (run.point["writers"], run.point["copiers"]) == (2, 2)
        else:
            assert run.point["writers"] + run.point["copiers"] <= max(cpus, 2), run.run_id


def test_a_point_is_resolved_once_and_read_only():
    """The plan resolves each point (defaults, keys that do not apply, auto
    threads) into a read-only Point; the stages after it take it as it is
    and refuse settings the plan never resolved."""
    import pickle

    from cowsnap.measure.bench import runner, wire
    from cowsnap.plan.point import Point

    runs = grid.expand(config.validate({"experiments": {"e": {"matrix": {"method": ["fork", "none"]}}}}))
    assert runs and all(isinstance(run.point, Point) for run in runs)
    point = runs[0].point
    assert isinstance(point["writers"], int) and isinstance(point["copiers"], int)
    with pytest.raises(TypeError, match="read-only"):
        point["size_mib"] = 1
    with pytest.raises(TypeError, match="read-only"):
        point.update(size_mib=1)
    assert pickle.loads(pickle.dumps(point)) == point  # a job's parameter, as Snakemake passes it
    assert grid.resolve({**point, "size_mib": 8})["size_mib"] == 8
    with pytest.raises(ValueError, match="auto"):
        Point({**point, "writers": "auto"})
    settings = {**config.point_defaults(), "method": "none"}
    with pytest.raises(TypeError, match="not a planned point"):
        runner.run(settings, build=None)
    with pytest.raises(TypeError, match="not a planned point"):
        wire.params_of(None, settings)
