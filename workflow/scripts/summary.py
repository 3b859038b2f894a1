from contextlib import redirect_stderr
from pathlib import Path

import pandas as pd

from cowsnap import summary

with open(snakemake.log[0], "w") as log, redirect_stderr(log):
    runs = pd.concat([pd.read_csv(path) for path in snakemake.input], ignore_index=True)
    Path(snakemake.output[0]).write_text(summary.build(runs))
