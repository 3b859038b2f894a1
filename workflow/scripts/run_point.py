# One timed run in this process, or the record of a run measured in a VM
# boot (run_vm_boot) copied from the boot's folder; written atomically.
import json
from pathlib import Path

from cowsnap.measure import jobs

with jobs.logged(snakemake.log[0]) as log:
    from cowsnap.measure import native, records, runner, vm

    out = Path(snakemake.output[0])
    run_id = snakemake.params.ids["run_id"]
    if snakemake.input.boot:
        record = json.loads((Path(snakemake.input.boot[0]) / vm.record_name(run_id)).read_text())
    else:
        ids = {**snakemake.params.ids, **jobs.schedule_ids(out, run_id)}
        records.check_space(out.parent)
        # The build rule owns building: a timed job only loads what it made.
        build = native.built(snakemake.input.library, snakemake.params.cxxflags, snakemake.params.build_log)
        jobs.wait_at_gate(run_id)
        record = runner.run(snakemake.params.point, build, ids)
    records.write(out, record)
    print(json.dumps({k: record.get(k) for k in ("run_id", "status", "reason", "kernel", "writers_s")}), file=log)
