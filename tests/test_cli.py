"""`cowsnap run` and `cowsnap compare` on bad input: a message, no traceback."""

import json
import subprocess
import sys

import pytest


def cowsnap(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cowsnap.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    "args, says",
    [
        (["size_mib=8", "size_mib=9"], "size_mib: given twice"),
        (["writers=[1"], "writers='[1'"),
        (["method=uffd", "release=none"], "release=none applies to none of its points (method=uffd)"),
        (["writers=2.0"], "point.writers: 2.0 is not allowed; allowed values: an integer from 1 to 4096"),
        (["numa_mem=bind:0-"], "numa_mem='bind:0-' is not allowed"),
    ],
    ids=["repeated", "yaml", "not applicable", "float", "numa"],
)
def test_bad_settings_are_refused_with_a_message(args, says):
    done = cowsnap("run", *args)
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_record_printed_when_out_cannot_be_written(build, tmp_path):
    (tmp_path / "a_file").write_text("")
    done = cowsnap(
        "run", "size_mib=4", f"--build-dir={build.directory.parent}", "--out", str(tmp_path / "a_file" / "r.json"),
        "batch_kib=512", "method=none", "memcpy_mib=0",
    )  # fmt: skip
    assert done.returncode == 1
    assert "cannot write the record" in done.stderr and "Traceback" not in done.stderr
    record = json.loads(done.stdout)
    assert record["size_mib"] == 4 and record["batch_kib"] == 512  # settings after --out were taken


@pytest.mark.parametrize(
    "table, says",
    [
        ('a,b\n1,2,3\n"x\n', "not a readable runs.csv"),
        ("experiment,point_id\ne,p1\n", "no column status"),
        ("", "not a readable runs.csv"),
    ],
    ids=["garbled", "columns missing", "empty"],
)
def test_compare_refuses_a_malformed_table(tmp_path, table, says):
    for side in ("a", "b"):
        (tmp_path / side / "e").mkdir(parents=True)
        (tmp_path / side / "e" / "runs.csv").write_text(table)
    done = cowsnap("compare", "a", "b", "--out", "out", cwd=tmp_path)
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_free_space_is_checked_before_measuring(tmp_path):
    from cowsnap.measure import records

    assert records.space_reason(tmp_path, needed_mib=1) == ""
    reason = records.space_reason(tmp_path, needed_mib=2**50)
    assert "MiB free in" in reason and str(tmp_path) in reason
    with pytest.raises(records.DiskFullError):
        records.check_space(tmp_path, needed_mib=2**50)
