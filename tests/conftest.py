import pytest

from cowsnap.measure import native, runner
from cowsnap.plan import config


@pytest.fixture(scope="session")
def build(tmp_path_factory):
    """One real build of native/ for the whole session."""
    return native.ensure_built(tmp_path_factory.mktemp("build"), config.schema()["properties"]["cxxflags"]["default"])


@pytest.fixture
def run_point_raw(build):
    """Runs one point (defaults plus the given keys); the record, whatever its status."""

    def run(**settings):
        return runner.run({**config.point_defaults(), "memcpy_mib": 0, **settings}, build)

    return run


@pytest.fixture
def run_point(build):
    """Runs one point (defaults plus the given keys) and returns its record;
    a point this machine cannot run skips the test with the record's reason."""

    def run(**settings):
        point = {**config.point_defaults(), "memcpy_mib": 0, **settings}
        record = runner.run(point, build)
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
