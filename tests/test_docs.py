"""The docs against the code they mirror: the point keys of docs/config.md
against the schema, the watch's keys against docs/keys.md, every option of
every command against its help text and the docs, the outputs against
results/README.md, and the help texts' own promises."""

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cowsnap import cli, watch_cli
from cowsnap.analyse import aggregate, glossary
from cowsnap.measure.watch import tracker
from cowsnap.plan import config

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").glob("*.md"))


def point_key_rows(text: str) -> list[set[str]]:
    """The keys each row of config.md's table of point keys names in its first cell."""
    table = text[text.index("Point keys (") : text.index("Some keys apply")]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return [set(re.findall(r"`([a-z_]+)`", row.split(" | ")[0])) for row in rows]


def test_config_md_has_a_row_for_every_point_key_and_no_other():
    rows = point_key_rows((REPO / "docs" / "config.md").read_text())
    documented = set().union(*rows)
    schema = set(config.point_schema())
    assert not schema - documented, f"point keys with no row in docs/config.md: {sorted(schema - documented)}"
    assert not documented - schema, f"docs/config.md rows name no point key: {sorted(documented - schema)}"
    assert sum(len(row) for row in rows) == len(documented)  # each key in one row


def watch_keys() -> set[str]:
    """Every counter a `cowsnap watch` record (watch.json's processes,
    timeline.csv's rows) carries per process (tracker.Watch.counted)."""
    return {*tracker.COUNTERS, "shared_pages"}


def test_every_key_of_a_watch_record_is_in_keys_md():
    keys_md = (REPO / "docs" / "keys.md").read_text()
    missing = sorted(key for key in watch_keys() if f"| `{key}`" not in keys_md)
    assert not missing, f"watch keys missing from docs/keys.md (add them to cowsnap/analyse/glossary.py): {missing}"
    for key in watch_keys():
        assert glossary.lookup(key).label


def parsers() -> dict[str, argparse.ArgumentParser]:
    """Each command's parser; calibrate and watch parse their own."""
    top = cli.build_parser()
    (commands,) = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
    found = dict(commands.choices)
    found["calibrate"] = cli.calibrate_parser()
    found["watch"] = watch_cli.build_parser()
    return found


def options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]


def test_every_option_of_every_command_has_help_text():
    empty = [
        f"{name} {action.option_strings or action.dest}"
        for name, parser in parsers().items()
        for action in options(parser)
        if not (action.help or "").strip()
    ]
    assert not empty, f"options without help text: {empty}"


def test_every_option_of_every_command_is_in_the_docs():
    docs = {path.name: path.read_text() for path in DOCS}
    missing = []
    for name, parser in parsers().items():
        pages = [text for text in docs.values() if f"cowsnap {name}" in text]
        for action in options(parser):
            for option in action.option_strings:
                if not any(re.search(rf"`{re.escape(option)}\b", text) for text in pages):
                    missing.append(f"cowsnap {name} {option}")
    assert not missing, f"options no doc beside `cowsnap COMMAND` names: {missing}"


def test_results_readme_names_every_output():
    text = (REPO / "results" / "README.md").read_text()
    missing = [f"{table}.csv" for table in aggregate.TABLES if f"/{table}.csv`" not in text]
    others = ("results/summary.md", "results/figures/", "results/pool/levers.csv", "results/vm/", ".timeline.csv")
    missing += [path for path in others if path not in text]
    assert not missing, f"results/README.md does not name: {missing}"


def help_text(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "cowsnap.cli", *args], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_top_level_help_names_every_command_in_its_description():
    description = " ".join(cli.build_parser().description.split())
    for name in parsers():
        assert re.search(rf"\b{re.escape(name)} \(", description), name
    assert description in " ".join(help_text("--help").split())


def test_watch_help_usage_shows_both_forms():
    usage = help_text("watch", "--help").split("\n\n")[0]
    assert usage.startswith("usage: cowsnap watch")
    assert "-- COMMAND [ARGS...]" in usage
    assert "--pid PID" in usage


@pytest.mark.parametrize("results", ["results", "results/smoke", "/tmp/elsewhere"])
def test_the_reading_guide_is_linked_from_the_readme_and_the_summary_title(results):
    from cowsnap.analyse import summary

    assert "(docs/reading-the-summary.md)" in (REPO / "README.md").read_text()
    folder = REPO / results  # an absolute results folder stays as it is
    title = summary.build(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(), guide=summary.guide_link(folder))
    link = title.splitlines()[0].split("](")[1].rstrip(")")
    assert (folder / link).resolve() == REPO / "docs" / "reading-the-summary.md"
    assert (REPO / "docs" / "reading-the-summary.md").exists()


def test_the_reading_guide_is_short_and_quotes_the_thresholds():
    from cowsnap.analyse import verdict

    text = (REPO / "docs" / "reading-the-summary.md").read_text()
    assert len(text.splitlines()) < 80
    for word in ("not copying", "partly copying", "copying", "reuse", "resolved", "same within", "unstable"):
        assert f"**{word}" in text, word
    for word in ("cpu-bound", "the floor", "the interval's level", "the trade-off set", "best lever"):
        assert f"**{word}**" in text, word
    assert f"fewer than {verdict.COPYING_MIN_PAGES} copies" in text
    quoted = {name: float(value) for name, value in re.findall(r"`([A-Z_]+) = ([0-9.]+)`", text)}
    names = ("NOT_COPYING", "MOSTLY", "REUSING_SHARE", "LEVER_SHARE", "NEGLIGIBLE", "NOISE_CV", "CPU_WAIT_SHARE")
    assert set(quoted) == set(names)
    for name in names:
        value = getattr(verdict, name)
        assert quoted[name] == value, name
        assert f"{100 * value:g}%" in text, name
    assert f"passes {verdict.OUTLIER_Z:g}" in text
