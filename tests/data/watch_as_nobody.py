"""Runs `cowsnap watch ARGS...` as the user nobody (uid 65534, no
capabilities): loads the native library and every module the watch uses
while it still may read them (this machine's Python lives under a
directory only root may enter), then drops to nobody for good and runs
the watch.

    python watch_as_nobody.py BUILD_DIR ARGS...
"""

import encodings.utf_16_be  # noqa: F401  (the PDF backend asks for it late)
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.backends.backend_agg  # noqa: E402, F401
import matplotlib.backends.backend_pdf  # noqa: E402, F401
import matplotlib.pyplot  # noqa: E402, F401
import numpy  # noqa: E402, F401
import pandas  # noqa: E402, F401
import seaborn  # noqa: E402, F401

from cowsnap import cli, watch_cli  # noqa: E402
from cowsnap.plan import config  # noqa: E402

native_ns = watch_cli.load_native(sys.argv[1], config.schema()["properties"]["cxxflags"]["default"])
watch_cli.load_native = lambda *_: native_ns
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
sys.exit(cli.main(["watch", *sys.argv[2:]]))
