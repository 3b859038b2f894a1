"""Lever "data in flat buffers": the same records as int64 arrays and one bytes buffer are a few big objects, so the
workers' reads write no reference count in the data's pages and the forked workers copy almost nothing."""

import pool_common

ITEMS = 3_200_000  # about 100 MiB of columns

if __name__ == "__main__":
    pool_common.main("pool_flat", ITEMS, pool_common.build_columns, pool_common.read_columns)
