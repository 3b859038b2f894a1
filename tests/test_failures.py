"""Faults injected for real: a child killed, a child timed out, a run
killed, a sweep interrupted. Finished records stay intact, knobs come
back, and a rerun does only what is missing."""

import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cowsnap import jobs
from cowsnap.measure import knobs, records
from cowsnap.plan import config

REPO = Path(__file__).resolve().parent.parent


def children_of(pid: int) -> list[int]:
    """The pids of a process's children ([] once it is gone)."""
    found = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
    except OSError:  # it, or one of its threads, exited meanwhile
        pass
    return found


def test_child_timed_out_is_a_failed_record(run_point_raw):
    record = run_point_raw(method="fork", size_mib=256, timeout_s=0.001, hold="writers")
    assert record["status"] == "failed"
    assert "timed out" in record["reason"]
    assert record["snapshot_ok"] is False


def address_space_bytes(pid: int) -> int:
    """A process's virtual memory size (0 once it is gone)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[20])
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0


def test_killed_child_is_a_failed_record(build, tmp_path):
    out = tmp_path / "record.json"
    command = [
        sys.executable, "-m", "cowsnap.cli", "run", f"--build-dir={build.directory.parent}", f"--out={out}",
        "size_mib=512", "method=fork", "hold=writers", "release=none", "memcpy_mib=0", "writers=1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    victim = None
    while victim is None and time.monotonic() < deadline and process.poll() is None:
        # The benchmark process is the command's child. Its snapshot child is
        # the one of its children that maps the 512 MiB array: the empty
        # forks' children are made before the array exists.
        for pid in (grandchild for child in children_of(process.pid) for grandchild in children_of(child)):
            if address_space_bytes(pid) >= 512 * 2**20:
                victim = pid
                break
        time.sleep(0.01)
    assert victim, "no snapshot child seen"
    os.kill(victim, signal.SIGKILL)
    process.wait(timeout=120)
    record = records.read(out)
    assert record["status"] == "failed"
    assert "child killed by signal 9" in record["reason"]
    assert process.returncode == 1


TINY = """
experiments:
  sweep:
    repetitions: 4
    base: {size_mib: 128, batch_kib: 2048, memcpy_mib: 0, writers: 1, copiers: 1, hold: writers, release: none}
    matrix:
      method: [none, fork]
"""


def snakemake(cwd, *args, **popen):
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--cores", "2", *args]
    return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def finished(tmp_path) -> list[Path]:
    return sorted((tmp_path / "results" / "sweep").glob("p*/*.json"))


def pending_runs(tmp_path) -> int:
    dry = snakemake(tmp_path, "--dry-run")
    output = dry.communicate(timeout=120)[0]
    assert dry.returncode == 0, output
    for line in output.splitlines():
        if line.startswith("run_point"):
            return int(line.split()[1])
    return 0


def hold_the_third_run(gate: Path, process) -> int:
    """Lets the first two runs of the sweep measure and holds the third at
    the gate (the COWSNAP_TEST_GATE hook: its benchmark process waits, its
    knobs set, nothing measured); returns that process's pid."""
    released: set[str] = set()
    deadline = time.monotonic() + 240
    while True:
        assert process.poll() is None, process.stdout.read()
        assert time.monotonic() < deadline, "the sweep never reached its third run"
        for marker in sorted(gate.glob("*.waiting")):
            token = marker.name.removesuffix(".waiting")
            if token in released:
                continue
            if len(released) == 2:
                return int(marker.read_text())
            (gate / token).touch()
            released.add(token)
        time.sleep(0.01)


def interrupt(process, output: list[str]) -> None:
    """SIGINT to Snakemake until it says it is stopping: one that lands while
    its main thread writes a log line is swallowed by Snakemake's log handler."""
    deadline = time.monotonic() + 120
    while not any("Terminating processes on user request" in line for line in output):
        assert process.poll() is None and time.monotonic() < deadline, "".join(output)
        os.kill(process.pid, signal.SIGINT)
        stop_waiting = time.monotonic() + 2
        while time.monotonic() < stop_waiting and not any("Terminating processes" in line for line in output):
            time.sleep(0.01)


@pytest.mark.parametrize("how", ["interrupt the sweep", "kill a run"])
def test_sweep_survives_and_resumes(sweep_folder, how):
    tmp_path = sweep_folder
    (tmp_path / "config" / "config.yaml").write_text(TINY)
    gate = tmp_path / "gate"
    gate.mkdir()
    # SIGINT as a terminal gives it, whatever the test runner was started
    # with (a shell starts background commands with SIGINT ignored).
    process = snakemake(
        tmp_path,
        start_new_session=True,
        env={**os.environ, jobs.GATE_VARIABLE: str(gate)},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        held = hold_the_third_run(gate, process)
        assert len(finished(tmp_path)) == 2  # runs go one at a time: two done, one held, five to go
        assert knobs.JOURNAL.exists()  # the held run set task_delayacct
        lines: list[str] = []  # Snakemake's output, read as it comes: a full pipe would stop it
        reader = threading.Thread(target=lambda: [lines.append(line) for line in process.stdout], daemon=True)
        reader.start()
        if how == "interrupt the sweep":
            interrupt(process, lines)
        else:
            os.kill(held, signal.SIGKILL)  # the benchmark process, as the OOM killer would
        (gate / "all").touch()  # whatever is still running goes on
        process.wait(timeout=240)
        reader.join(timeout=60)
    finally:
        (gate / "all").touch()
        if process.poll() is None:  # a failed test leaves no sweep behind, holding the knob lock
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            knobs.restore_journal()
    output = "".join(lines)
    done = {path: json.loads(path.read_text()) for path in finished(tmp_path)}  # every record is whole
    assert all(record["status"] in {"ok", "failed", "skipped"} for record in done.values())
    assert not list((tmp_path / "results").rglob(".*.tmp"))
    assert not knobs.JOURNAL.exists()
    missing = pending_runs(tmp_path)
    if how == "kill a run":
        # The killed run is a failed record saying so; the sweep went on.
        assert process.returncode == 0, output
        failed = [record for record in done.values() if record["status"] == "failed"]
        assert [record["reason"] for record in failed] == ["the benchmark process was killed by signal 9 (Killed)"]
        assert len(done) == 8 and missing == 0
        return
    # Only the missing runs are left, and at most the one that was in
    # progress when the sweep stopped, which is measured again.
    assert 8 - len(done) <= missing <= 8 - len(done) + 1
    assert missing > 0
    rerun = snakemake(tmp_path)
    output = rerun.communicate(timeout=300)[0]  # read as it comes: a full pipe would stop Snakemake
    assert rerun.returncode == 0, output
    assert len(finished(tmp_path)) == 8
    kept = [path for path, record in done.items() if json.loads(path.read_text()) == record]
    assert len(kept) >= len(done) - (missing - (8 - len(done)))


def test_record_write_is_atomic(tmp_path):
    target = tmp_path / "r.json"
    records.write(target, {"a": 1})
    with pytest.raises(TypeError):
        records.write(target, {"a": object()})
    assert records.read(target) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


class FakeBuild:
    def describe(self) -> dict:
        return {"source_hash": "0123"}


def test_every_record_opens_and_closes_with_the_one_envelope():
    record = records.opened({"method": "fork", "size_mib": 4}, FakeBuild(), {"run_id": "e/p0/0"})
    assert list(record) == ["run_id", "started_at", "method", "size_mib", "source_hash"]
    assert datetime.datetime.fromisoformat(record["started_at"]).tzinfo is not None
    assert records.ok() == {"status": "ok", "reason": ""}
    assert records.skipped("why") == {"status": "skipped", "reason": "why"}
    assert records.failed("broke") == {"status": "failed", "reason": "broke"}
    here = records.skipped_here(record, "why")
    assert list(here)[: len(record)] == list(record) and here["kernel"] and here["reason"] == "why"
    assert list(here)[-2:] == ["status", "reason"]
    # A bench run, a VM run and a watch point build it there, not each its own.
    for module in ("bench/runner.py", "vm.py", "watch/point.py", "watch/guest.py"):
        source = (REPO / "cowsnap" / "measure" / module).read_text()
        assert '"status"' not in source and '"reason"' not in source and '"started_at"' not in source, module


def test_array_larger_than_memory_is_skipped_with_the_reason(run_point_raw):
    record = run_point_raw(method="none", size_mib=16 * 1024 * 1024, batch_kib=2048)
    assert record["status"] == "skipped"
    assert "MiB of memory" in record["reason"] and "available" in record["reason"]


def test_defaults_are_the_schemas():
    # Each key's default is a value its own schema allows.
    for key, value in config.point_defaults().items():
        assert config.validate_point({key: value})[key] == value
