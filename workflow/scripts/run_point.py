# One timed run in this process, or the record of a run measured in a VM
# boot (run_vm_boot) copied from the boot's folder; written atomically.
import json
from pathlib import Path

from cowsnap import jobs

with jobs.logged(snakemake.log[0]) as log:
    from cowsnap import native, records, runner, vm

    out = Path(snakemake.output[0])
    run_id = snakemake.params.ids["run_id"]
    if snakemake.input.boot:
        record = json.loads((Path(snakemake.input.boot[0]) / vm.record_name(run_id)).read_text())
    else:
        ids = {**snakemake.params.ids, **jobs.schedule_ids(out, run_id)}
        records.check_space(out.parent)
        # The build for this node: the one given, unless the flags tune for the
        # CPU and this node's CPU differs (then it is built here, once per type).
        build = native.ensure_built(Path(snakemake.input.library).parent.parent, snakemake.params.cxxflags)
        jobs.wait_at_gate(run_id)
        record = runner.run(snakemake.params.point, build, ids)
    records.write(out, record)
    print(json.dumps({k: record.get(k) for k in ("run_id", "status", "reason", "kernel", "writers_s")}), file=log)
