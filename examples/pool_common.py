"""What the pool_*.py examples share: the options, the data, the workers' measurement and the JSON line.

The data is N records (i, 2 * i, str(i)): as Python objects (a list of tuples) or as flat columns (two int64
arrays, the strings' int64 start offsets and their bytes). A worker reads its own Private_Dirty
(/proc/self/smaps_rollup) first thing and again after its passes; the growth is the pages it broke out of sharing
(copy on write) plus any new memory it wrote itself.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from array import array

PAGE_KB = 4


def parse_args(default_items: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=sys.modules["__main__"].__doc__)
    parser.add_argument("--items", type=int, default=default_items, help="records (default %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default %(default)s)")
    parser.add_argument(
        "--passes", type=int, default=2, help="passes of each worker over all records (default %(default)s)"
    )
    parser.add_argument(
        "--linger", type=float, default=0.3, help="seconds a worker sleeps after its passes (default %(default)s)"
    )
    parser.add_argument("--ready-file", help="created once the data is built (for a watch to read before the fork)")
    parser.add_argument("--go-file", help="the workers start only once this file exists")
    parser.add_argument("--end-file", help="after the workers, the program exits only once this file exists")
    return parser.parse_args()


def rollup_kb(field: str) -> int:
    """One field of this process's /proc/self/smaps_rollup, in kB."""
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise LookupError(f"no {field} in /proc/self/smaps_rollup")


def build_objects(n: int) -> list[tuple[int, int, str]]:
    return [(i, i * 2, str(i)) for i in range(n)]


def read_objects(records: list[tuple[int, int, str]], passes: int) -> int:
    """Reads every field of every record; each read writes the reference count of the object it reads."""
    total = 0
    for _ in range(passes):
        for record in records:
            total += record[0] + record[1] + len(record[2])
    return total


def build_columns(n: int, chunk: int = 1 << 16) -> tuple[array, array, array, bytearray]:
    """The records as flat columns; no object per record outlives its chunk."""
    first = array("q", range(n))
    second = array("q", range(0, 2 * n, 2))
    offsets = array("q", [0])  # where each string starts, and where the last ends
    low, width = 0, 1
    while low < n:  # the numbers of `width` digits: [low, high)
        high = min(10**width, n)
        offsets.extend(range(offsets[-1] + width, offsets[-1] + width * (high - low) + 1, width))
        low, width = high, width + 1
    text = bytearray()
    for low in range(0, n, chunk):
        text += "".join(map(str, range(low, min(low + chunk, n)))).encode()
    return first, second, offsets, text


def column_views(buffer: memoryview, n: int, text_bytes: int) -> tuple[memoryview, ...]:
    """The columns laid end to end in one buffer (the order build_columns returns them)."""
    first = buffer[: 8 * n].cast("q")
    second = buffer[8 * n : 16 * n].cast("q")
    offsets = buffer[16 * n : 24 * n + 8].cast("q")
    return first, second, offsets, buffer[24 * n + 8 : 24 * n + 8 + text_bytes]


def read_columns(columns: tuple, passes: int) -> int:
    """Reads both numbers and the first byte of the string of every record: no object of the data is touched."""
    first, second, offsets, text = columns
    total = 0
    for _ in range(passes):
        for x, y, start in zip(first, second, offsets, strict=False):  # offsets has one more
            total += x + y + text[start]
    return total


def same(data):
    return data


def worker(results, load, read, source, passes: int, linger: float) -> None:
    start_kb = rollup_kb("Private_Dirty")
    data = load(source)
    read(data, passes)
    end_kb = rollup_kb("Private_Dirty")
    results.put((os.getpid(), (end_kb - start_kb) // PAGE_KB))
    time.sleep(linger)  # stay visible to an outside watcher with the final counts


def run_workers(context, args: argparse.Namespace, source, read, load=same) -> dict:
    """Starts the workers on `source`, waits for all of them and returns what they measured (`seconds`: from the
    first start to the last join, the workers' linger included)."""
    results = context.SimpleQueue()
    workers = [
        context.Process(target=worker, args=(results, load, read, source, args.passes, args.linger))
        for _ in range(args.workers)
    ]
    if args.ready_file:
        open(args.ready_file, "w").close()
    while args.go_file and not os.path.exists(args.go_file):
        time.sleep(0.01)
    heap_pages = rollup_kb("Anonymous") // PAGE_KB
    start = time.perf_counter()
    for process in workers:
        process.start()
    for process in workers:
        process.join()
    seconds = time.perf_counter() - start
    failed = [process.exitcode for process in workers if process.exitcode != 0]
    if failed:
        raise SystemExit(f"workers failed with exit codes {failed}")
    growth = dict(results.get() for _ in workers)  # a message this small waits in the pipe
    pids = [process.pid for process in workers]
    return {
        "heap_pages_at_fork": heap_pages,
        "worker_private_dirty_growth_pages": [growth[pid] for pid in pids],
        "worker_pids": pids,
        "seconds": round(seconds, 3),
    }


def main(program: str, default_items: int, build, read, start_method: str = "fork") -> None:
    """A pool program whose workers read what build() made in the parent: options, data, workers, report."""
    args = parse_args(default_items)
    data = build(args.items)
    context = multiprocessing.get_context(start_method)
    report(program, args, run_workers(context, args, data, read))


def report(program: str, args: argparse.Namespace, measured: dict) -> None:
    print(json.dumps({"program": program, "workers": args.workers, "items": args.items, **measured}), flush=True)
    while args.end_file and not os.path.exists(args.end_file):
        time.sleep(0.01)
    # Exit without tearing down the interpreter: freeing the records would write every object once more.
    os._exit(0)
