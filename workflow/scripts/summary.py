from pathlib import Path

from cowsnap import jobs

with jobs.logged(snakemake.log[0]):
    import pandas as pd

    from cowsnap import summary

    runs = pd.concat([pd.read_csv(path) for path in snakemake.input], ignore_index=True)
    Path(snakemake.output[0]).write_text(jobs.summary_text(runs, summary.build))
