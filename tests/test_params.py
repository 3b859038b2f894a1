"""One list of point parameters: the config schema's point keys, less the
keys Python applies itself, are the fields of native/common/params.def, from which
the Params struct and its text codec are both expanded."""

from __future__ import annotations

import re
from pathlib import Path

from cowsnap.measure.bench import wire
from cowsnap.plan import config, point

PARAMS_DEF = Path(__file__).resolve().parent.parent / "native" / "common" / "params.def"


def native_fields() -> list[str]:
    return re.findall(r"^COWSNAP_PARAM\(\s*[\w:<>]+\s*,\s*(\w+)\s*\)", PARAMS_DEF.read_text(), re.MULTILINE)


def test_schema_point_keys_are_the_native_fields():
    fields = native_fields()
    assert len(fields) == len(set(fields)), "a field is listed twice in params.def"
    schema_keys = set(config.point_schema()) - set(point.PYTHON_KEYS)
    only_schema, only_native = sorted(schema_keys - set(fields)), sorted(set(fields) - schema_keys)
    assert not only_schema and not only_native, f"only in the schema: {only_schema}; only in params.def: {only_native}"


def test_python_keys_are_point_keys():
    assert set(point.PYTHON_KEYS) <= set(config.point_schema())


RESULT_DEF = PARAMS_DEF.with_name("result.def")
COWSNAP_H = PARAMS_DEF.with_name("cowsnap.h")


def test_the_result_is_one_list_and_a_record_holds_each_field(run_point):
    fields = wire.result_fields()
    kinds = {kind for kind, _ in fields}
    assert kinds <= {"text", "numbers", "texts", "series", "labels"}, kinds
    struct = re.search(r"struct Result \{(.*?)\n\};", COWSNAP_H.read_text(), re.DOTALL).group(1)
    assert re.sub(r"\s+", " ", struct).strip() == (
        '#define COWSNAP_RESULT(kind, name) result_kind::kind name; #include "result.def" #undef COWSNAP_RESULT'
    ), "Result's fields are written outside result.def"
    record = run_point(size_mib=4, batch_kib=512, writers=1, copiers=1, method="fork", sharing_interval_ms=5)
    for kind, name in fields:
        if kind in ("text", "series", "labels"):
            assert name in record, name  # a list of its own, or a text
        else:
            assert name not in record  # a mapping's entries are keys of their own
    assert record["status"] == "ok" and record["writers_s"] > 0 and record["writer_wpcopy_source"]  # numbers, texts
    assert len(record["sharing_s"]) == len(record["sharing_pages"]) > 0
    assert len(record["latency_phase"]) == len(record["latency_ns"]) == len(record["latency_writes"]) > 0
