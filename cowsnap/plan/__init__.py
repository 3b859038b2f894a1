"""Planning a sweep: the config, its validation, the grid of runs."""
