# One timed run in this process; its record, written atomically.
import json
from pathlib import Path

from cowsnap import jobs

with jobs.logged(snakemake.log[0]) as log:
    from cowsnap import native, records, runner

    out = Path(snakemake.output[0])
    ids = {**snakemake.params.ids, **jobs.schedule_ids(out, snakemake.params.ids["run_id"])}
    records.check_space(out.parent)
    # The build rule owns building: a timed job only loads what it made.
    build = native.built(snakemake.input.library, snakemake.params.cxxflags, snakemake.params.build_log)
    jobs.wait_at_gate(ids["run_id"])
    record = runner.run(snakemake.params.point, build, ids)
    records.write(out, record)
    print(json.dumps({k: record.get(k) for k in ("run_id", "status", "reason", "writers_s")}), file=log)
