"""cowsnap: what a fork()-based memory snapshot costs a running program."""
