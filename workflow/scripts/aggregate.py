from contextlib import redirect_stderr
from pathlib import Path

from cowsnap import aggregate

with open(snakemake.log[0], "w") as log, redirect_stderr(log):
    outputs = {name: Path(path) for name, path in snakemake.output.items()}
    aggregate.write([Path(p) for p in snakemake.input], outputs)
