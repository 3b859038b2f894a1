"""The native wire, the one place a point meets the benchmark: a point as
the native Params, the Params as the text the benchmark executable reads,
and its Result (returned, or as that executable's output) as a record's
measured keys. The codec is native/common/wire.cpp's, through the loaded build."""

from __future__ import annotations

import re
from functools import cache

from cowsnap.measure import native
from cowsnap.plan import point as plan_point

TEXT_OR_NUMBER = ("touched_during",)  # Params text fields whose config value may be a number
FLAGS = ("snapshot_ok", "delayacct_effective", "writers_wait", "samples_sharing")  # measured values that are booleans


def params_of(cowsnap, point: dict):
    """The benchmark's Params (of the loaded cowsnap namespace) for a point,
    as the plan resolved it (warm_mib auto as the memory it allocates)."""
    point = {**plan_point.planned(point), "warm_mib": plan_point.warm_mib(point)}
    params = cowsnap.Params()
    for key, value in plan_point.native_params(point).items():
        # A text field may take a number (touched_during: free or a fraction).
        setattr(params, key, str(value) if key in TEXT_OR_NUMBER else value)
    return params


@cache
def result_fields() -> tuple[tuple[str, str], ...]:
    """(kind, name) of every Result field, in native/common/result.def's order."""
    text = (native.NATIVE_DIR / native.COMMON / "result.def").read_text()
    return tuple(re.findall(r"^COWSNAP_RESULT\((\w+), (\w+)\)", text, re.MULTILINE))


def result_keys(result) -> dict:
    """The measured keys of the benchmark's Result: a text or a list under
    its field's name, the entries of a mapping as keys of their own."""
    keys: dict = {}
    for kind, name in result_fields():
        field = getattr(result, name)
        if kind == "text":
            keys[name] = str(field)
        elif kind == "numbers":
            keys.update({str(key): float(value) for key, value in field})
        elif kind == "texts":
            keys.update({str(key): str(value) for key, value in field})
        elif kind == "series":
            keys[name] = [float(value) for value in field]
        else:  # labels
            keys[name] = [str(value) for value in field]
    for flag in FLAGS:
        if flag in keys:
            keys[flag] = bool(keys[flag])
    return keys


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
