from pathlib import Path

from cowsnap import jobs

with jobs.logged(snakemake.log[0]):
    from cowsnap.analyse import aggregate, plots

    name, experiment = snakemake.wildcards.figure, snakemake.wildcards.experiment
    tables = {key: aggregate.read_table(path) for key, path in snakemake.input.items()}
    _, empty = plots.draw(name, tables, Path(snakemake.output.png).with_suffix(""), experiment)
    caption = plots.caption(name, experiment, snakemake.params.description, tables["points"], empty)
    Path(snakemake.output.caption).write_text(caption + "\n")
    plots.sidecar(snakemake.output.sidecar, name, tables["runs"], snakemake.params.config_hash, caption)
