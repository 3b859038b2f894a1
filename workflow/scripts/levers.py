from pathlib import Path

from cowsnap import jobs

with jobs.logged(snakemake.log[0]) as log:
    from cowsnap.analyse.watch import levers

    rows = levers.from_paths([Path(path) for path in snakemake.input])
    levers.write(rows, Path(snakemake.output[0]))
    print(f"{len(rows)} examples from {len(snakemake.input)} records", file=log)
