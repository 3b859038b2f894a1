# One watch point: the user's program under cowsnap watch, its snapshot
# taken under its load (cowsnap.measure.watch.point); the record written
# atomically; a run that fails or is stopped leaves its timeline so far
# beside the record (<repetition>.timeline.csv).
from pathlib import Path

from cowsnap import jobs
from cowsnap.measure.watch import point as watch_point

out = Path(snakemake.output[0])
jobs.timed_job(
    snakemake.log[0],
    [jobs.JobRun(out, snakemake.params.ids)],
    lambda build, ids: [watch_point.run(snakemake.params.point, build, ids[0], out.with_suffix(".timeline.csv"))],
    (snakemake.input.library, snakemake.params.cxxflags, snakemake.params.build_log),
    ("run_id", "status", "reason", "writer_wpcopy_count_during_snapshot", "snapshot_end_s"),
)
