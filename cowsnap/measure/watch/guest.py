"""A watch point inside a VM's guest (cowsnap.measure.vm boots it).

The guest sees the host's / read-only, so it runs the host's own Python
and this checkout: `python -m cowsnap.measure.watch.guest LIBRARY POINT`
runs the point's steps under the same watch as on the host
(cowsnap.measure.watch.point.measured_here: the same counters, sources, keys
and verdict words; taskstats through the host's build of the native library,
loaded by cppyy in the guest) and prints the measured keys as one line of
JSON, which the host puts in the record. The guest's batch script has set
the point's knobs before and puts them back after; the program's folder is
in the guest's tmpfs (the batch folder's tmp/), writable there.
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

from cowsnap.measure import checks, environment, native, vm
from cowsnap.plan import point as plan_point
from cowsnap.plan.commands import run_environment


def guest_run(point: dict, build: native.Build, batch: Path, index: int) -> vm.GuestRun:
    """A watch point in the guest: this module, run by the host's Python
    with this checkout on its path, the program's folder in the guest's tmpfs."""
    point_file = batch / f"{index}.point.json"
    tmp = batch / vm.GUEST_TMP
    variables = {
        "PATH": run_environment()["PATH"],
        "PYTHONPATH": str(environment.REPO),
        "PYTHONDONTWRITEBYTECODE": "1",  # the checkout is read-only in the guest
        "TMPDIR": str(tmp),
        "HOME": str(tmp),
    }
    words = ["env", *(f"{k}={v}" for k, v in variables.items()), sys.executable, "-m", __name__]
    words += [str(build.library.resolve()), str(point_file)]
    return vm.GuestRun(
        files={point_file: json.dumps(dict(point))},
        checks=checks.mode_checks(point),
        knobs=checks.mode_knobs(point),
        command=shlex.join(words),
        parse=parse,
    )


def parse(text: str) -> dict:
    """The measured keys the guest printed (its last line)."""
    lines = text.strip().splitlines()
    return json.loads(lines[-1])


def main(argv: list[str]) -> int:
    """Runs the point; prints its measured keys, with what the guest's
    Python took before watching: importing the watch (guest_import_s) and
    loading the native library through cppyy (guest_native_load_s)."""
    library, point_file = argv
    began = time.monotonic()
    from cowsnap.measure.watch import point as watch_point

    imported = time.monotonic()
    build = native.Build(Path(library))
    native.load(build.library)  # loaded once per process: the watch finds it loaded
    loaded = time.monotonic()
    point = plan_point.Point(json.loads(Path(point_file).read_text()))
    measured = watch_point.measured_here(point, build)
    measured.update(guest_import_s=round(imported - began, 3), guest_native_load_s=round(loaded - imported, 3))
    print(json.dumps(measured))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
