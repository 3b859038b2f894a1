from contextlib import redirect_stderr
from pathlib import Path

from cowsnap import aggregate

with open(snakemake.log[0], "w") as log, redirect_stderr(log):
    aggregate.write([Path(p) for p in snakemake.input], Path(snakemake.output.runs), Path(snakemake.output.sharing))
