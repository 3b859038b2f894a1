# One VM boot measuring every run of one (vm_kernel, vm_nodes); a record per run.
import json
from pathlib import Path

from cowsnap.measure import jobs

with jobs.logged(snakemake.log[0]) as log:
    from cowsnap.measure import native, records, runner, vm

    out = Path(snakemake.output[0])
    out.mkdir(parents=True, exist_ok=True)
    build = native.ensure_built(Path(snakemake.input.library).parent.parent, snakemake.params.cxxflags)
    runs = []
    for run in snakemake.params.runs:
        ids = dict(run["ids"])
        record_path = ids.pop("record")
        runs.append((run["point"], {**ids, **jobs.schedule_ids(Path(record_path), ids["run_id"])}))
    for record in runner.run_vm(runs, build, out.parent):
        records.write(out / vm.record_name(record["run_id"]), record)
        print(json.dumps({k: record.get(k) for k in ("run_id", "status", "reason", "kernel", "vm_boot_s")}), file=log)
