"""Lever "shared memory": the columns live in a multiprocessing.shared_memory segment (a MAP_SHARED mapping), which
the workers attach by name; a shared mapping is never copied on write, and the parent's heap stays small."""

import multiprocessing
from multiprocessing import shared_memory

import pool_common

ITEMS = 3_200_000  # about 100 MiB of columns


def attach(source: tuple) -> tuple:
    """In a worker: maps the segment; it is returned with the views so that it outlives them."""
    name, n, text_bytes = source
    segment = shared_memory.SharedMemory(name=name)
    return segment, pool_common.column_views(segment.buf, n, text_bytes)


def read(attached: tuple, passes: int) -> int:
    return pool_common.read_columns(attached[1], passes)


def to_segment(columns: tuple) -> shared_memory.SharedMemory:
    """Copies the columns end to end into a new segment; the private columns go when the caller drops them."""
    raw = [memoryview(column).cast("B") for column in columns]
    segment = shared_memory.SharedMemory(create=True, size=sum(len(part) for part in raw))
    position = 0
    for part in raw:
        segment.buf[position : position + len(part)] = part
        position += len(part)
    return segment


def main() -> None:
    args = pool_common.parse_args(default_items=ITEMS)
    columns = pool_common.build_columns(args.items)
    segment = to_segment(columns)
    source = (segment.name, args.items, len(columns[3]))
    del columns  # the parent keeps only the segment
    context = multiprocessing.get_context("fork")
    try:
        measured = pool_common.run_workers(context, args, source, read, load=attach)
    finally:
        segment.unlink()
    pool_common.report("pool_shared_memory", args, measured)


if __name__ == "__main__":
    main()
