"""What the machine's own host adds to a run: whether this machine returns
freed memory to a host (a virtio-balloon with free page reporting, from
sysfs), how much it reported during the run, and the CPU time the host
stole from it. A count that cannot be read is absent, and a key says why."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cowsnap.measure.environment import read_text

BALLOON_DRIVER = Path("/sys/bus/virtio/drivers/virtio_balloon")
REPORTED_KIB = Path("/sys/module/page_reporting/parameters/reported_kib")
PROC_STAT = Path("/proc/stat")
# VIRTIO_BALLOON_F_REPORTING: the device takes free page reports
# (include/uapi/linux/virtio_balloon.h); sysfs shows the features as bits.
REPORTING_FEATURE = 5


def memory_return() -> str:
    """How this machine hands free memory back to a host, as sysfs tells."""
    devices = sorted(BALLOON_DRIVER.glob("virtio*"))
    if not devices:
        return "none seen: no virtio-balloon device (other hypervisors' balloons are not looked for)"
    features = read_text(devices[0] / "features")
    if len(features) > REPORTING_FEATURE and features[REPORTING_FEATURE] == "1":
        return "free page reporting (virtio-balloon): freed memory goes back to the host, backed again on first touch"
    return "virtio-balloon without free page reporting: the host takes memory only when it inflates the balloon"


def counters() -> dict[str, int]:
    """This moment's memory reported to the host (KiB, where the kernel
    counts it), CPU time stolen by the host (clock ticks, all CPUs) and the
    steady clock."""
    now = {"monotonic_s": time.monotonic()}
    reported = read_text(REPORTED_KIB)
    if reported.isdigit():
        now["reported_kib"] = int(reported)
    fields = read_text(PROC_STAT).split("\n", 1)[0].split()
    if len(fields) > 8 and fields[0] == "cpu":
        now["steal_ticks"] = int(fields[8])
    return now


def during(before: dict[str, int], after: dict[str, int]) -> dict:
    """The record's keys for the span between two counters() readings."""
    returned = memory_return()
    keys: dict = {"host_memory_return": returned}
    if "reported_kib" in before and "reported_kib" in after:
        keys["host_reported_kib"] = after["reported_kib"] - before["reported_kib"]
    else:
        keys["host_reported_source"] = (
            f"not counted: this kernel has no {REPORTED_KIB}" if returned.startswith("free page") else
            "not counted: no free page reporting seen here"
        )  # fmt: skip
    if "steal_ticks" in before and "steal_ticks" in after:
        keys["steal_s"] = (after["steal_ticks"] - before["steal_ticks"]) / os.sysconf("SC_CLK_TCK")
        wall = after["monotonic_s"] - before["monotonic_s"]
        if wall > 0:
            keys["steal_share"] = keys["steal_s"] / (wall * os.sysconf("SC_NPROCESSORS_ONLN"))
    return keys
