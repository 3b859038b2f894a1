from pathlib import Path

from cowsnap import jobs

with jobs.logged(snakemake.log[0]):
    from cowsnap.analyse import aggregate

    outputs = {name: Path(path) for name, path in snakemake.output.items()}
    aggregate.write([Path(p) for p in snakemake.input.records], outputs, snakemake.params.references)
