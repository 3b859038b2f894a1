"""Lever "gc.freeze() before fork" (the gc module's advice): it keeps the collector away from the parent's objects
in the workers, but reading an object still writes its reference count, so the workers copy about as much as in
pool_objects.py."""

import gc
import multiprocessing

import pool_common

ITEMS = 500_000  # about 100 MiB of objects


def enable_gc(records: list) -> list:
    """In a worker: collections resume, and skip the frozen objects."""
    gc.enable()
    return records


def main() -> None:
    gc.disable()  # early: no collection visits (or untracks) the objects about to be built
    args = pool_common.parse_args(default_items=ITEMS)
    records = pool_common.build_objects(args.items)
    gc.freeze()  # right before the fork: every tracked object moves to the permanent generation
    context = multiprocessing.get_context("fork")
    measured = pool_common.run_workers(context, args, records, pool_common.read_objects, load=enable_gc)
    pool_common.report("pool_gc_freeze", args, measured)


if __name__ == "__main__":
    main()
