from pathlib import Path

from cowsnap import jobs

with jobs.logged(snakemake.log[0]):
    import pandas as pd

    from cowsnap.analyse import aggregate, summary

    tables = {
        key: pd.concat([aggregate.read_table(path) for path in snakemake.input[key]], ignore_index=True)
        for key in ("runs", "points", "ratios", "scaling", "comparisons", "model")
    }
    out = Path(snakemake.output[0])
    text = summary.build(
        tables["runs"], tables["points"], tables["ratios"], tables["scaling"], tables["comparisons"], tables["model"],
        guide=summary.guide_link(out.parent),
    )  # fmt: skip
    out.write_text(text)
