from pathlib import Path

from cowsnap import jobs

with jobs.logged(snakemake.log[0]):
    import pandas as pd

    from cowsnap import plots

    name, experiment = snakemake.wildcards.figure, snakemake.wildcards.experiment
    runs, sharing = pd.read_csv(snakemake.input.runs), pd.read_csv(snakemake.input.sharing)
    plots.draw(name, runs, sharing, Path(snakemake.output.png).with_suffix(""), experiment)
    caption = plots.caption(name, experiment, snakemake.params.description, runs)
    Path(snakemake.output.caption).write_text(caption + "\n")
    plots.sidecar(snakemake.output.sidecar, name, runs, snakemake.params.config_hash, caption)
