# One watch point: the user's program under cowsnap watch, its snapshot
# taken under its load (cowsnap.measure.watch_point); the record written
# atomically; a run that fails or is stopped leaves its timeline so far
# beside the record (<repetition>.timeline.csv).
import json
from pathlib import Path

from cowsnap.measure import jobs

with jobs.logged(snakemake.log[0]) as log:
    from cowsnap.measure import native, records, watch_point

    out = Path(snakemake.output[0])
    run_id = snakemake.params.ids["run_id"]
    ids = {**snakemake.params.ids, **jobs.schedule_ids(out, run_id)}
    records.check_space(out.parent)
    # The build rule owns building: a watch point only loads what it made.
    build = native.built(snakemake.input.library, snakemake.params.cxxflags, snakemake.params.build_log)
    record = watch_point.run(snakemake.params.point, build, ids, out.with_suffix(".timeline.csv"))
    records.write(out, record)
    keys = ("run_id", "status", "reason", "writer_wpcopy_count_during_snapshot", "snapshot_end_s")
    print(json.dumps({k: record.get(k) for k in keys}), file=log)
