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
