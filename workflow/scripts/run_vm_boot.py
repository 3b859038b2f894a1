# One VM boot measuring every run of one (vm_kernel, vm_nodes); a record per
# run in the boot's folder, which run_point copies.
from pathlib import Path

from cowsnap import jobs
from cowsnap.measure import guests, vm

out = Path(snakemake.output[0])
out.mkdir(parents=True, exist_ok=True)
runs = []
for run in snakemake.params.runs:
    ids = dict(run["ids"])
    record = Path(ids.pop("record"))  # where run_point copies it: its place in the schedule
    runs.append(jobs.JobRun(out / vm.record_name(ids["run_id"]), ids, scheduled_as=record))
points = [run["point"] for run in snakemake.params.runs]
jobs.timed_job(
    snakemake.log[0],
    runs,
    lambda build, ids: guests.run_boot(list(zip(points, ids, strict=True)), build, out.parent),
    (snakemake.input.library, snakemake.params.cxxflags, snakemake.params.build_log),
    ("run_id", "status", "reason", "kernel", "vm_boot_s"),
)
