"""A server's own report of its snapshot, beside the watch's counts: the
`name:value` lines a watch point's report_command prints (Redis's and
Valkey's INFO), read into the record's server_ keys. A key the output does
not hold is absent, and server_report_source says why."""

from __future__ import annotations

import re

# INFO fields recorded as they are: the record's key for each.
FIELDS = {"rdb_last_cow_size": "server_rdb_last_cow_size", "latest_fork_usec": "server_latest_fork_usec"}
# INFO latencystats: the load's SET latency percentiles, from the server's side.
LATENCY_FIELD = "latency_percentiles_usec_set"
PERCENTILES = {"p50": "server_set_p50_us", "p99": "server_set_p99_us", "p99.9": "server_set_p999_us"}
KEYS = (*FIELDS.values(), *PERCENTILES.values())
LINE = re.compile(r"^([a-z_]+):(.*)$")


def read(text: str) -> dict:
    """The server_ keys a report's output holds, and server_report_source."""
    values: dict = {}
    for line in text.splitlines():
        found = LINE.match(line.strip())
        if not found:
            continue
        name, value = found.groups()
        if name in FIELDS:
            try:
                values[FIELDS[name]] = float(value)
            except ValueError:
                continue
        elif name == LATENCY_FIELD:
            for part in value.split(","):
                quantile, _, number = part.partition("=")
                if quantile in PERCENTILES:
                    try:
                        values[PERCENTILES[quantile]] = float(number)
                    except ValueError:
                        continue
    missing = [key for key in KEYS if key not in values]
    values["server_report_source"] = (
        "report_command" if not missing else f"report_command: its output has no {', '.join(missing)}"
    )
    return values
