"""Measuring: the native build, one run, the knobs it sets, watching a process."""
