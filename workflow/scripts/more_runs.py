# One round of more runs: the points of an experiment whose comparison is
# still open (cowsnap.analyse.precision), from the records so far.
import json
from pathlib import Path

from cowsnap import jobs

with jobs.logged(snakemake.log[0]) as log:
    from cowsnap.analyse import aggregate, precision
    from cowsnap.measure import records

    runs = aggregate.runs_table([records.read(Path(path)) for path in snakemake.input])
    chosen = precision.more_runs(runs, snakemake.params.precision, snakemake.params.references)
    Path(snakemake.output[0]).write_text(json.dumps(chosen) + "\n")
    print(f"{len(chosen)} points get more runs: {chosen}", file=log)
