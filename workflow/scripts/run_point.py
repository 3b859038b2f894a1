# One timed run in this process; its record, written atomically.
import json
from contextlib import redirect_stderr
from pathlib import Path

from cowsnap import native, records, runner

with open(snakemake.log[0], "w") as log, redirect_stderr(log):
    # The build for this node: the one given, unless the flags tune for the
    # CPU and this node's CPU differs (then it is built here, once per type).
    build = native.ensure_built(Path(snakemake.input.library).parent.parent, snakemake.params.cxxflags)
    record = runner.run(snakemake.params.point, build, snakemake.params.ids)
    records.write(Path(snakemake.output[0]), record)
    print(json.dumps({k: record.get(k) for k in ("run_id", "status", "reason", "writers_s")}), file=log)
