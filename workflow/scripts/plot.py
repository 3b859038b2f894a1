from contextlib import redirect_stderr
from pathlib import Path

import pandas as pd

from cowsnap import plots

with open(snakemake.log[0], "w") as log, redirect_stderr(log):
    name, experiment = snakemake.wildcards.figure, snakemake.wildcards.experiment
    runs, sharing = pd.read_csv(snakemake.input.runs), pd.read_csv(snakemake.input.sharing)
    plots.draw(name, runs, sharing, Path(snakemake.output.png).with_suffix(""), experiment)
    caption = plots.caption(name, experiment, snakemake.params.description, runs)
    Path(snakemake.output.caption).write_text(caption + "\n")
    plots.sidecar(snakemake.output.sidecar, name, runs, snakemake.params.config_hash, caption)
