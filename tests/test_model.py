"""The cost model (cowsnap.analyse.model, docs/model.md): fitted on a
recorded `scale` sweep, checked on the size it did not see, and `cowsnap
predict` from it, refusing what its constants cannot speak for."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cowsnap import cli
from cowsnap.analyse import aggregate, model

# The default sweep's scale experiment on this 2-core VM, 2026-12-06 (a quiet machine): fork,
# uffd and stop over 64 MiB-1 GiB of 4 KiB pages, writes at a set rate.
SCALE = Path(__file__).parent / "data" / "results" / "sweep-2026-12-06" / "scale-runs.csv.gz"


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return aggregate.statistics(aggregate.read_table(SCALE))


def test_every_term_is_checked_on_the_size_its_fit_did_not_see(tables):
    checks = tables["model_checks"]
    assert set(checks["size_mib"]) == {1024} and set(checks["fit_sizes_mib"]) == {"64-128-256-512"}
    fork = checks[checks["method"] == "fork"]
    assert set(fork["term"]) == set(model.TERMS)
    # The copies from the predicted duration: at two rates and both drawn patterns, within 15%.
    copies = fork[fork["term"] == "copies"]
    assert {(row.pattern, row.write_rate) for row in copies.itertuples()} == {
        (pattern, rate) for pattern in ("random", "skewed") for rate in (20000, 100000)
    }
    assert copies["error"].abs().max() <= 0.15, copies[["pattern", "write_rate", "error"]]
    # A term predicts exactly when its largest held-out error is within MAX_ERROR.
    for _, row in tables["model"].iterrows():
        for term in model.TERMS:
            if f"{term}_error" in row and not pd.isna(row[f"{term}_error"]):
                assert row[f"{term}_predicts"] == (row[f"{term}_error"] <= model.MAX_ERROR)


def test_a_held_out_prediction_does_not_see_the_held_out_size(tables):
    points, runs = tables["points"], aggregate.read_table(SCALE)
    changed_points, changed_runs = points.copy(), runs.copy()
    for changed in (changed_points, changed_runs):
        largest = changed["size_mib"] == changed["size_mib"].max()
        for column in model.TERMS.values():
            changed.loc[largest, column] = changed.loc[largest, column] * 10
    before, after = model.checks(points, runs), model.checks(changed_points, changed_runs)
    pd.testing.assert_series_equal(before["predicted"], after["predicted"])
    assert (after["measured"].dropna() != before["measured"].dropna()).all()


@pytest.fixture
def results(tables, tmp_path) -> Path:
    (tmp_path / model.EXPERIMENT).mkdir()
    tables["model"].to_csv(tmp_path / model.EXPERIMENT / "model.csv", index=False)
    return tmp_path


def predict(results: Path, *args: str) -> list[str]:
    return ["predict", "--results", str(results), *args]


def test_predict_prints_each_method_with_its_error_bands(results, capsys):
    code = cli.main(predict(results, "--size", "300G", "--backing", "4k", "--write-rate", "100000"))
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("- ")] == ["- uffd", "- fork", "- stop"]
    assert "Linux 6.18.44-fc-v1272" in out and "300x that" in out
    fork = next(line for line in lines if line.startswith("- fork"))
    for words in ("stall", "duration", "peak memory", "COW copies", "writers' copy-path time"):
        assert words in fork
    table = pd.read_csv(results / model.EXPERIMENT / "model.csv").set_index("method")
    # A term that did not predict a held-out size gets no number, and says so.
    for method, row in table.iterrows():
        line = next(text for text in lines if text.startswith(f"- {method}:"))
        for term, words in (("stall", "stall"), ("duration", "duration")):
            said = line.split(f"{words} ", 1)[1]
            assert said.startswith("not predicted") == (not row[f"{term}_predicts"]), (method, term, line)


@pytest.mark.parametrize(
    "args, named",
    [
        (["--size", "300G", "--backing", "thp", "--write-rate", "1000"], "--backing thp: "),
        (["--size", "300X", "--write-rate", "1000"], "--size '300X': not a size"),
        (["--size=-1G", "--write-rate", "1000"], "--size '-1G': not a size"),
        (["--size", "1G", "--write-rate", "1000", "--pattern", "blocked"], "--pattern blocked: "),
        (["--size", "1G", "--write-rate", "-5"], "--write-rate -5: not a rate"),
        (["--size", "1G", "--write-rate", "5", "--kernel", "5.10.0"], "--kernel 5.10.0: "),
    ],
)
def test_predict_refuses_what_its_constants_cannot_speak_for(results, capsys, args, named):
    assert cli.main(predict(results, *args)) == 2
    error = capsys.readouterr().err
    assert named in error
    if "--backing" in named:
        assert "measured 4k only" in error


def test_predict_without_a_model_says_what_makes_one(tmp_path, capsys):
    assert cli.main(predict(tmp_path, "--size", "1G", "--write-rate", "5")) == 2
    assert "scale" in capsys.readouterr().err
