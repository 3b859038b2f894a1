# Compiles native/ through cppyy's genreflex and the C++ compiler; on a
# compile error the rule fails with the compiler's diagnostics in its log.
import sys
from pathlib import Path

from cowsnap import jobs

with jobs.logged(snakemake.log[0]) as log:
    from cowsnap.measure import native

    try:
        native.build(Path(snakemake.output.library).parent, snakemake.params.cxxflags)
    except native.BuildError as error:
        log.write(f"{error}\n")
        sys.exit(f"build failed, diagnostics in {snakemake.log[0]}:\n{error}")
    log.write(f"built {snakemake.output.library}\n")
