from contextlib import redirect_stderr
from pathlib import Path

import pandas as pd

from cowsnap import plots

with open(snakemake.log[0], "w") as log, redirect_stderr(log):
    draw = plots.FIGURES[snakemake.wildcards.figure]
    runs, sharing = pd.read_csv(snakemake.input.runs), pd.read_csv(snakemake.input.sharing)
    draw(runs, sharing, Path(snakemake.output.png).with_suffix(""), snakemake.wildcards.experiment)
