"""Lever "forkserver start method": the workers fork from a fresh server process, share none of the parent's heap
and so copy none of it; each rebuilds the records in its own private memory instead, about the heap's size, which
its growth counts (new pages, not copies)."""

import multiprocessing

import pool_common

ITEMS = 500_000  # about 100 MiB of objects


def main() -> None:
    args = pool_common.parse_args(default_items=ITEMS)
    records = pool_common.build_objects(args.items)  # the parent's own copy, as in pool_objects.py
    context = multiprocessing.get_context("forkserver")
    # A worker gets only the count and builds its records after its first reading (as a dataset loads its files).
    measured = pool_common.run_workers(
        context, args, len(records), pool_common.read_objects, load=pool_common.build_objects
    )
    pool_common.report("pool_forkserver", args, measured)


if __name__ == "__main__":
    main()
