"""A bad config stops with one message naming the key and what is allowed."""

import pytest

from cowsnap import config, grid
from cowsnap.config import ConfigError


def one_experiment(**experiment):
    return {"experiments": {"e": experiment}}


def error_of(raw):
    with pytest.raises(ConfigError) as caught:
        grid.expand(config.validate(raw))
    return str(caught.value)


def test_unknown_key_names_it_and_the_allowed_keys():
    message = error_of(one_experiment(base={"sise_mib": 64}))
    assert "config.experiments.e.base" in message
    assert "'sise_mib'" in message
    assert "size_mib" in message and "writers" in message


def test_bad_value_names_key_and_allowed_values():
    message = error_of(one_experiment(matrix={"method": ["fork", "vfork"]}))
    assert "config.experiments.e.matrix.method[1]" in message
    assert "'vfork'" in message
    assert "none, fork, uffd, stop" in message


def test_bad_backing_lists_the_backings():
    message = error_of(one_experiment(base={"backing": "huge"}))
    assert "base.backing" in message and "hugetlb-2m" in message


def test_missing_required_experiments():
    assert "missing required key 'experiments'" in error_of({"results": "r"})


@pytest.mark.parametrize(
    ("base", "key"),
    [({"size_mib": 0}, "size_mib"), ({"writers": -1}, "writers"), ({"writers": "two"}, "writers")],
)
def test_wrong_numbers_and_types_name_the_key(base, key):
    assert f"base.{key}" in error_of(one_experiment(base=base))


def test_empty_matrix_and_empty_axis():
    assert "must not be empty" in error_of(one_experiment(matrix={}))
    assert "matrix.writers: must not be empty" in error_of(one_experiment(matrix={"writers": []}))


def test_batch_larger_than_array():
    message = error_of(one_experiment(base={"size_mib": 1, "batch_kib": 2048}))
    assert "batch_kib=2048" in message and "size_mib" in message


def test_batch_not_whole_huge_pages():
    message = error_of(one_experiment(base={"backing": "hugetlb-2m", "batch_kib": 1024}))
    assert "batch_kib=1024" in message and "hugetlb-2m" in message


def test_hold_writers_after_child_is_refused():
    message = error_of(one_experiment(matrix={"hold": ["copy", "writers"], "start": ["with_child", "after_child"]}))
    assert "hold=writers" in message and "start=after_child" in message


def test_duplicate_experiment_names(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("experiments:\n  a: {}\n  a: {}\n")
    with pytest.raises(ConfigError, match="'a' appears twice"):
        config.load(path)


def test_not_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("experiments: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(path)


def test_defaults_are_filled():
    done = config.validate(one_experiment())
    experiment = done["experiments"]["e"]
    assert experiment["repetitions"] == 1
    assert experiment["base"] == config.point_defaults()
    assert done["results"] == "results"


def test_shipped_configs_are_valid():
    for path in sorted(config.SCHEMA_PATH.parent.parent.glob("config/*.yaml")):
        assert grid.expand(config.load(path)), path


def test_too_many_threads():
    message = error_of(one_experiment(base={"writers": 100_000}))
    assert "base.writers" in message and "4096" in message


@pytest.mark.parametrize("spec", ["bind:x", "interleave", "preferred:0-1", "node:0"])
def test_bad_numa_spec_lists_the_forms(spec):
    message = error_of(one_experiment(base={"numa_mem": spec}))
    assert "base.numa_mem" in message and "interleave:<nodes|all>" in message


def test_hugetlb_size_not_offered():
    message = error_of(one_experiment(base={"backing": "hugetlb-16m"}))
    assert "base.backing" in message and "hugetlb-1g" in message


def test_baseline_that_is_not_a_point():
    message = error_of(one_experiment(baseline={"method": "none"}, matrix={"method": ["fork", "uffd"]}))
    assert "its baseline" in message and "method=none" in message


def test_unknown_top_level_key_and_list_matrix():
    assert "unknown key 'experiment'" in error_of({"experiment": {}, "experiments": {"e": {}}})
    runs = grid.expand(config.validate(one_experiment(matrix=[{"method": ["none"]}, {"writers": [3]}])))
    assert sorted((r.point["method"], r.point["writers"]) for r in runs) == [("fork", 3), ("none", 2)]


def test_snakemake_reports_a_config_error(tmp_path):
    import subprocess
    import sys

    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("experiments:\n  e: {base: {method: vfork}}\n")
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(config.SCHEMA_PATH.parent.parent / "Snakefile"),
         "--cores", "1", "--dry-run"],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0
    assert "config.experiments.e.base.method: 'vfork' is not allowed; allowed values: none, fork, uffd, stop" in (
        done.stdout + done.stderr
    )
    assert not (tmp_path / "results").exists()
