"""One list of point parameters: the config schema's point keys, less the
keys Python applies itself, are the fields of native/params.def, from which
the Params struct and its text codec are both expanded."""

from __future__ import annotations

import re
from pathlib import Path

from cowsnap.plan import config, point

PARAMS_DEF = Path(__file__).resolve().parent.parent / "native" / "params.def"


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
