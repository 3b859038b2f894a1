"""Read, validate and complete a cowsnap configuration.

Every error is one ConfigError whose message names the key and what is
allowed there; nothing runs on a configuration that fails here.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
import unicodedata
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from cowsnap.plan import methods, patterns

if TYPE_CHECKING:
    import jsonschema

SCHEMA_PATH = Path(__file__).with_name("schema.yaml")
# Folders a results path must stay out of (the path itself or anything under it).
SYSTEM_FOLDERS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run", "/sbin",
                  "/sys", "/usr", "/var")  # fmt: skip


@cache
def _validator_class():
    """JSON Schema 2020-12, where integers are integers (2.0 is not a thread
    count) and numbers are finite. Imported here: a timed run validates nothing."""
    import jsonschema

    types = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {
            "integer": lambda _, value: isinstance(value, int) and not isinstance(value, bool),
            "number": lambda _, value: (
                isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            ),
        }
    )
    return jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=types)


class ConfigError(ValueError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML loader that refuses a key given twice (say, two experiments of one name)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(
                    f"key {key!r} appears twice ({key_node.start_mark.name}, line {key_node.start_mark.line + 1})"
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


@cache
def schema() -> dict:
    """The schema file, with the methods' and the patterns' tables and one
    matrix axis per point key."""
    loaded = yaml.safe_load(SCHEMA_PATH.read_text())
    method = loaded["$defs"]["point"]["properties"]["method"]
    method["enum"] = list(methods.METHODS)
    method["description"] = "; ".join(f"{name}: {row.description}" for name, row in methods.METHODS.items())
    pattern = loaded["$defs"]["point"]["properties"]["pattern"]
    pattern["enum"] = list(patterns.PATTERNS)
    pattern["description"] = "; ".join(f"{name}: {row.description}" for name, row in patterns.PATTERNS.items())
    axes = loaded["$defs"]["cross"]["properties"]
    for key in loaded["$defs"]["point"]["properties"]:
        axes[key] = {"type": "array", "minItems": 1, "items": {"$ref": f"#/$defs/point/properties/{key}"}}
    return loaded


def point_schema() -> dict:
    return schema()["$defs"]["point"]["properties"]


def point_defaults() -> dict:
    return {key: spec["default"] for key, spec in point_schema().items()}


def axis_names() -> list[str]:
    return list(point_schema())


def read_yaml(path: Path) -> dict:
    """Parse a config file; a file that is not a YAML mapping is a ConfigError."""
    try:
        with open(path) as file:
            loader = _UniqueKeyLoader(file)
            try:
                node = loader.get_single_node()
                if node is not None:
                    _check_expansion(node, path)
                data = loader.construct_document(node) if node is not None else None
            finally:
                loader.dispose()
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a YAML mapping with an 'experiments' key, got {type(data).__name__}")
    return data


# The most values a config may expand to (YAML aliases repeat a value
# without copying it; everything after parsing walks the expansion).
MAX_VALUES = 1_000_000
RENAMED = {"seed": "schedule_seed"}  # top-level keys by their former names, named in the error


def _expanded_size(node: yaml.Node, memo: dict) -> int:
    """Values a YAML node expands to, aliases counted as often as they are
    used: linear in the file, however large the expansion."""
    if id(node) not in memo:
        memo[id(node)] = 0  # a node that refers to itself adds nothing more
        children = []
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        memo[id(node)] = 1 + sum(_expanded_size(child, memo) for child in children)
    return memo[id(node)]


def _check_expansion(node: yaml.Node, path: Path) -> None:
    """Refuses a document that expands past MAX_VALUES, naming the key
    where the expansion is: the largest value, followed down while it is
    too large by itself."""
    memo: dict = {}
    if _expanded_size(node, memo) <= MAX_VALUES:
        return
    where = "config"
    while isinstance(node, yaml.MappingNode):
        key, child = max(node.value, key=lambda pair: memo[id(pair[1])])
        if memo[id(child)] <= MAX_VALUES:
            break
        where += f".{key.value}"
        node = child
    raise ConfigError(
        f"{path}: {where} expands to {memo[id(node)]:,} values (YAML aliases repeat a value each time they are "
        f"used); allowed: at most {MAX_VALUES:,} values in a config"
    )


def _location(path, root: str) -> str:
    text = root
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _resolved(spec: dict) -> dict:
    """A schema entry with its $ref (a path in the schema file) followed."""
    if "$ref" not in spec:
        return spec
    target: dict = schema()
    for part in spec["$ref"].removeprefix("#/").split("/"):
        target = target[part]
    return {**_resolved(target), **{key: value for key, value in spec.items() if key != "$ref"}}


def allowed_values(spec: dict) -> str:
    """What a schema entry allows, in words."""
    spec = _resolved(spec)
    if "enum" in spec:
        return ", ".join(map(str, spec["enum"]))
    if "oneOf" in spec:
        return " or ".join(allowed_values(option) for option in spec["oneOf"])
    if "const" in spec:
        return str(spec["const"])
    if spec.get("type") in ("integer", "number"):
        kind = "an integer" if spec["type"] == "integer" else "a finite number"
        low = spec.get("minimum", spec.get("exclusiveMinimum"))
        low_word = "above" if "exclusiveMinimum" in spec else "from"
        if "exclusiveMaximum" in spec:
            return f"{kind} {low_word} {low}, below {spec['exclusiveMaximum']}"
        high = spec.get("maximum")
        if low is not None and high is not None:
            return f"{kind} {low_word} {low}" + (f", at most {high}" if low_word == "above" else f" to {high}")
        if low is not None:
            return f"{kind} {low_word} {low}"
        return kind
    if spec.get("type") == "boolean":
        return "true, false"
    if spec.get("type") == "array":
        if "description" in spec:  # in words, a list named as such
            return spec["description"] if "list" in spec["description"] else f"a list [...] of {spec['description']}"
        return "a list [...]" + (f" of: {allowed_values(spec['items'])}" if "items" in spec else "")
    if spec.get("type") == "object":
        return "a mapping {...}" + (f" of {spec['description']}" if "description" in spec else "")
    if "pattern" in spec:
        return spec.get("description", f"matching {spec['pattern']}")
    return spec.get("description", spec.get("type", "see cowsnap/plan/schema.yaml"))


def _not_ascii(text: str, known=()) -> str:
    """For a name or value with a character outside ASCII (a Cyrillic 'а'
    that looks like 'a'), each such character by its code point and name,
    and the known one it was likely meant to be; '' when it is all ASCII."""
    if not isinstance(text, str) or text.isascii():
        return ""
    chars = ", ".join(
        f"{char!r} at position {index + 1} is U+{ord(char):04X} {unicodedata.name(char, 'an unnamed character')}"
        for index, char in enumerate(text)
        if not char.isascii()
    )
    meant = _likely(text, known)
    return f" (not ASCII: {chars}" + (f"; did you mean {meant!r}?)" if meant else ")")


def _likely(text: str, known) -> str:
    """The known name text was likely meant to be ('' when none is close):
    one equal to it wherever text is ASCII, else the closest."""
    known = [str(name) for name in known]
    same = [
        name for name in known
        if len(name) == len(text) and all(a == b for a, b in zip(text, name, strict=True) if a.isascii())
    ]  # fmt: skip
    close = difflib.get_close_matches(text, known, n=1, cutoff=0.75)
    return (same or close or [""])[0]


def _explain(error: jsonschema.ValidationError, root: str) -> str:
    where = _location(error.absolute_path, root)
    rule, value, instance = error.validator, error.validator_value, error.instance
    if rule == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        unknown = ", ".join(
            repr(key)
            + (f" (now {RENAMED[key]})" if key in RENAMED else _not_ascii(key, allowed))
            + (f" (did you mean {_likely(key, allowed)!r}?)" if key.isascii() and _likely(key, allowed) else "")
            for key in sorted(set(instance) - set(allowed))
        )
        return f"{where}: unknown key {unknown}; allowed keys: {', '.join(allowed)}"
    if rule == "enum":
        return (
            f"{where}: {quote(instance)} is not allowed{_not_ascii(instance, value)}; allowed values: "
            f"{', '.join(map(str, value))}"
        )
    if rule == "pattern":
        hint = error.schema.get("description", f"matching {value}")
        return f"{where}: {quote(instance)} is not allowed{_not_ascii(instance)}; allowed values: {hint}"
    if rule == "required":
        missing = [key for key in value if key not in instance]
        return f"{where}: missing required key {', '.join(map(repr, missing))}"
    if rule == "propertyNames":
        return (
            f"{where}: name {quote(instance)} is not allowed{_not_ascii(instance)}; names are lower-case letters, "
            "digits and _"
        )
    if rule == "type" and value == "array":
        return (
            f"{where}: {quote(instance)} is not a list (a single value is written as a list of one: "
            f"[{quote(instance)}]); allowed values: {allowed_values(error.schema)}"
        )
    if rule in ("minProperties", "minItems", "minLength"):
        return f"{where}: must not be empty"
    if rule == "type" and value == "string" and isinstance(instance, (int, float)) and not isinstance(instance, bool):
        return (
            f"{where}: {quote(instance)} is a number, not text (YAML reads an unquoted 6.1 or 6.10 as a number): "
            f"write it in quotes; allowed values: {allowed_values(error.schema)}"
        )
    if rule in ("type", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "oneOf", "const", "maxLength"):
        spec = error.parent.schema if error.parent is not None and error.parent.validator == "oneOf" else error.schema
        fraction = ""
        if rule in ("maximum", "exclusiveMaximum") and value == 1 and isinstance(instance, (int, float)):
            fraction = f" (a fraction: {instance / 100:g} is {instance:g}%)"
        return f"{where}: {quote(instance)} is not allowed{fraction}; allowed values: {allowed_values(spec)}"
    return f"{where}: {error.message}"


def _fill(defaults: dict, given: dict) -> dict:
    return {**defaults, **copy.deepcopy(given)}


def _check(instance, subschema: dict, root: str) -> None:
    import jsonschema

    validator = _validator_class()(subschema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(instance))
    if error is not None:
        raise ConfigError(_explain(error, root))


def validate_point(settings: dict) -> dict:
    """One point (as given on a command line) with defaults filled in."""
    _check(settings, {"$defs": schema()["$defs"], "$ref": "#/$defs/point"}, "point")
    return _fill(point_defaults(), settings)


def _in_system_folder(path: str) -> bool:
    normal = "/" + os.path.normpath(path).lstrip("/")  # "//x" is "/x"
    return normal == "/" or any(normal == top or normal.startswith(top + "/") for top in SYSTEM_FOLDERS)


def check_output_path(path: str, key: str = "config.results") -> None:
    """A folder cowsnap writes to (key names where it was given) is inside
    the working folder, or anywhere outside the system folders: judged on
    the path resolved (symlinks and '..' followed), however it is written."""
    rule = " ".join(schema()["properties"]["results"]["description"].split()).split(": ", 1)[1]
    where = f"{key}: {quote(path)} is not allowed; allowed values: {rule}"
    if not path.strip() or "~" in path or "{" in path or "}" in path:
        raise ConfigError(where)
    here = os.path.realpath(os.getcwd())
    resolved = os.path.realpath(path)
    inside = not os.path.isabs(path) and (resolved == here or resolved.startswith(here.rstrip("/") + "/"))
    if not inside and (_in_system_folder(resolved) or (os.path.isabs(path) and _in_system_folder(path))):
        raise ConfigError(where + f" (it resolves to {quote(resolved)})")


def output_path(key: str):
    """An argparse type for an output path option (check_output_path)."""
    import argparse

    def parse(text: str) -> Path:
        try:
            check_output_path(text, key)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return Path(text)

    return parse


# Longest part of a value an error message quotes.
QUOTE_CHARS = 120


def quote(value) -> str:
    """A value as an error message shows it: its repr, on one line, at most
    QUOTE_CHARS characters of it (with how long it was)."""
    container = isinstance(value, (dict, list))
    text = " ".join((_short_repr(value) if container else repr(value)).split())
    if len(text) <= QUOTE_CHARS:
        return text
    # A container's repr was cut short already: its whole length is not known.
    return text[:QUOTE_CHARS] + ("..." if container else f"... ({len(text):,} characters)")


def _short_repr(value) -> str:
    """The first characters of a container's repr, without building the
    whole of it (a YAML alias may repeat one value millions of times)."""
    dict_like = isinstance(value, dict)
    parts, size = [], 0
    for item in value.items() if dict_like else value:
        part = f"{item[0]!r}: {_part(item[1])}" if dict_like else _part(item)
        parts.append(part)
        size += len(part) + 2
        if size > QUOTE_CHARS:
            parts.append("...")
            break
    return ("{%s}" if dict_like else "[%s]") % ", ".join(parts)


def _part(value) -> str:
    return _short_repr(value) if isinstance(value, (dict, list)) else repr(value)[:QUOTE_CHARS]


def validate(config: dict) -> dict:
    """The config with every default filled in; ConfigError on any fault."""
    _check(config, schema(), "config")
    top = {key: spec["default"] for key, spec in schema()["properties"].items() if "default" in spec}
    done = _fill(top, config)
    check_output_path(done["results"])
    if done["smoke_mib"]:
        done["results"] = str(Path(done["results"]) / "smoke")
    experiment_defaults = {
        key: spec["default"] for key, spec in schema()["$defs"]["experiment"]["properties"].items() if "default" in spec
    }
    done["experiments"] = {
        name: _fill(experiment_defaults, experiment) for name, experiment in config["experiments"].items()
    }
    for name, experiment in done["experiments"].items():
        experiment["base"] = _fill(point_defaults(), experiment["base"])
        if done["smoke_mib"]:
            experiment["repetitions"] = 1
            experiment.pop("precision", None)  # smoke mode runs each point once
        if "precision" in experiment:
            precision = experiment["precision"] = dict(experiment["precision"])
            if precision["max_repetitions"] <= experiment["repetitions"]:
                raise ConfigError(
                    f"config.experiments.{name}.precision.max_repetitions: {precision['max_repetitions']} is not "
                    f"above repetitions ({experiment['repetitions']}), so no round could add a run; allowed: more "
                    "than repetitions"
                )
            if "reference" not in experiment and "baseline" not in experiment:
                raise ConfigError(
                    f"config.experiments.{name}.precision: adds runs where a comparison with the reference or the "
                    "baseline is open, and the experiment has neither, so it could never add one; allowed: a "
                    "precision block with a reference or a baseline"
                )
            precision.setdefault("step", experiment["repetitions"])
    return done


def load(*paths: Path) -> dict:
    """Read config files (later ones override earlier keys) and validate them."""
    merged: dict = {}
    for path in paths:
        merged.update(read_yaml(path))
    return validate(merged)
