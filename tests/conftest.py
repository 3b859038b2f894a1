import os
import re
import shutil
from pathlib import Path

import pytest

from cowsnap.measure import native
from cowsnap.measure.bench import runner
from cowsnap.plan import config, grid


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    """One real build of native/ for the whole session."""
    return native.ensure_built(tmp_path_factory.mktemp("build"), config.schema()["properties"]["cxxflags"]["default"])


@pytest.fixture
def run_point_raw(build):
    """Runs one point (defaults plus the given keys); the record, whatever its status."""

    def run(**settings):
        return runner.run(grid.resolve({"memcpy_mib": 0, **settings}), build)

    return run


@pytest.fixture
def run_point(build):
    """Runs one point (defaults plus the given keys) and returns its record;
    a point this machine cannot run skips the test with the record's reason."""

    def run(**settings):
        record = runner.run(grid.resolve({"memcpy_mib": 0, **settings}), build)
        if record["status"] == "skipped":
            pytest.skip(f"not on this machine: {record['reason']}")
        assert record["status"] == "ok", record["reason"]
        return record

    return run


@pytest.fixture
def sweep_folder(tmp_path, build):
    """A folder to run the workflow in (config in config/config.yaml), its
    native build already in place: the session's, copied and marked up to
    date (snakemake --touch), so the build rule has nothing to do."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    library = tmp_path / "results" / "build" / build.directory.name / native.LIBRARY
    shutil.copytree(build.directory, library.parent)
    snakefile = Path(__file__).resolve().parent.parent / "Snakefile"
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text("experiments:\n  e: {}\n")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--cores", "1", "--touch"]
    subprocess.run([*command, str(library.relative_to(tmp_path))], cwd=tmp_path, capture_output=True, check=True)
    return tmp_path


# What CI promises (.ci/run): the tests run as root, with Debian's Redis; a
# promise not kept fails the session before any test runs.
REQUIRED = {
    "COWSNAP_REQUIRE_ROOT": ("the tests do not run as root", lambda: os.geteuid() == 0),
    "COWSNAP_REQUIRE_REDIS": (
        "redis-server, redis-cli or redis-benchmark is not installed",
        lambda: all(shutil.which(tool) for tool in ("redis-server", "redis-cli", "redis-benchmark")),
    ),
}


def delayacct_not_ours(reason: str) -> None:
    """Another program's delay accounting (already on, or switched during a
    watch): a skip on a shared machine, a failure where CI holds the machine
    (COWSNAP_REQUIRE_ROOT=1: nothing but the tests touches the knob)."""
    if os.environ.get("COWSNAP_REQUIRE_ROOT") == "1":
        pytest.fail(f"COWSNAP_REQUIRE_ROOT=1, yet {reason}")
    pytest.skip(reason)


def pytest_sessionstart(session):
    broken = [
        f"{name}=1 but {why}" for name, (why, kept) in REQUIRED.items() if os.environ.get(name) == "1" and not kept()
    ]
    if broken:
        pytest.exit("; ".join(broken), returncode=1)


SKIPS = []  # (test, reason) of every skipped test of the session


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        SKIPS.append((report.nodeid, reason.removeprefix("Skipped: ")))


def pytest_sessionfinish(session, exitstatus):
    """With COWSNAP_SKIP_ALLOWLIST naming a file of patterns (CI), a skip
    whose reason matches none of them fails the session."""
    allowlist = os.environ.get("COWSNAP_SKIP_ALLOWLIST")
    if not allowlist:
        return
    lines = Path(allowlist).read_text().splitlines()
    patterns = [re.compile(line) for line in lines if line.strip() and not line.startswith("#")]
    unexpected = [(test, reason) for test, reason in SKIPS if not any(p.search(reason) for p in patterns)]
    if unexpected:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        reporter.write_line(f"{len(unexpected)} skip(s) not in {allowlist}:", red=True)
        for test, reason in unexpected:
            reporter.write_line(f"  {test}: {reason}", red=True)


def undocumented_in_config_md(key: str, names) -> list[str]:
    """Names without their words in docs/config.md's row of the point key
    (a method's, a pattern's: "`name` (what it is)")."""
    config_md = Path(__file__).resolve().parent.parent / "docs" / "config.md"
    row = next(line for line in config_md.read_text().splitlines() if line.startswith(f"| `{key}` |"))
    return [name for name in names if f"`{name}` (" not in row]
