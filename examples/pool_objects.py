"""The problem: workers forked from a parent holding its data as Python objects copy most of that heap, because
reading an object writes its reference count and so breaks the page out of sharing."""

import pool_common

ITEMS = 500_000  # about 100 MiB of objects

if __name__ == "__main__":
    pool_common.main("pool_objects", ITEMS, pool_common.build_objects, pool_common.read_objects)
