"""The native wire, the one place a point meets the benchmark: a point as
the native Params, the Params as the text the benchmark executable reads,
and its Result (returned, or as that executable's output) as a record's
measured keys. The codec is native/wire.cpp's, through the loaded build."""

from __future__ import annotations

from cowsnap.measure import native
from cowsnap.plan import point as plan_point
from cowsnap.plan import threads

TEXT_OR_NUMBER = ("touched_during",)  # Params text fields whose config value may be a number
FLAGS = ("snapshot_ok", "delayacct_effective")  # measured values that are booleans


def params_of(cowsnap, point: dict):
    """The benchmark's Params (of the loaded cowsnap namespace) for a point,
    its auto threads resolved for this machine."""
    params = cowsnap.Params()
    point = threads.resolve(point)
    if point.get("warm_mib") == "auto":
        point = {**point, "warm_mib": plan_point.memory_needed_mib(point)}
    for key, value in plan_point.native_params(point).items():
        # A text field may take a number (touched_during: free or a fraction).
        setattr(params, key, str(value) if key in TEXT_OR_NUMBER else value)
    return params


def result_keys(result) -> dict:
    """The measured keys of the benchmark's Result."""
    values = {str(key): float(value) for key, value in result.values}
    for flag in FLAGS:
        if flag in values:
            values[flag] = bool(values[flag])
    return {
        "status": str(result.status),
        "reason": str(result.reason),
        **values,
        **{str(key): str(value) for key, value in result.effective},
        "sharing_s": list(result.sharing_s),
        "sharing_pages": list(result.sharing_pages),
        "latency_phase": [str(phase) for phase in result.latency_phase],
        "latency_ns": list(result.latency_ns),
        "latency_writes": list(result.latency_writes),
    }


def measure(point: dict, build: native.Build) -> dict:
    """Runs the point in a benchmark process of the build; the measured keys."""
    cowsnap = native.load(build.library)
    return result_keys(cowsnap.run(params_of(cowsnap, point), str(build.bench)))


def params_text(point: dict, build: native.Build) -> str:
    """The Params of a point as cowsnap-bench reads them on stdin."""
    cowsnap = native.load(build.library)
    return str(cowsnap.params_text(params_of(cowsnap, point)))


def parse_result(text: str, build: native.Build) -> dict:
    """cowsnap-bench's output -> the measured keys (measure's form)."""
    return result_keys(native.load(build.library).result_from_output(text))
