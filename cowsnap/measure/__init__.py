"""Measuring, shared by both products: the native build (native), the
machine (environment, host), the knobs a run sets (knobs), records
(records). The benchmark's runs are in bench/, the watch's in watch/."""
