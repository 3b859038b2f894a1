"""Facts about a point that every stage may ask: which of its keys the
native benchmark takes, and which Python applies itself."""

from __future__ import annotations

# Point keys the runner applies itself (system settings around the run).
HARNESS_KEYS = ("thp_mode", "hugetlb_pool", "delayacct")
# Point keys that say where the point runs: this machine (vm_kernel host) or
# a VM booting that kernel with vm_nodes NUMA nodes (cowsnap.measure.vm).
VM_KEYS = ("vm_kernel", "vm_nodes")
# The keys of a watch point (method=watch) only; a benchmark point has none
# of them (so its id and record are what they were before they existed).
COMMAND_KEYS = ("watch_command", "ready_command", "setup_command", "load_command", "snapshot_command", "after_command")
WATCH_KEYS = (*COMMAND_KEYS, "load_lead_s", "watch_after_s")
PYTHON_KEYS = HARNESS_KEYS + VM_KEYS + WATCH_KEYS
# Every other point key is a field of the native Params (native/params.def).


def native_params(point: dict) -> dict:
    """The point's keys that are fields of the native Params."""
    return {key: value for key, value in point.items() if key not in PYTHON_KEYS}
