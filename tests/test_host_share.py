"""The machine's own share in every record: what a fresh page costs just
before the snapshot, whether and how much free memory went back to a host,
the CPU time the host stole, and the memory brought back before a run."""

import os

import pytest

from cowsnap.measure import host
from cowsnap.plan import point as plan_point

SMALL = {"size_mib": 16, "batch_kib": 2048, "writers": 1, "copiers": 1}


@pytest.mark.parametrize("method", ("none", "fork", "uffd", "stop"))
def test_every_method_records_what_a_fresh_page_costs(run_point, method):
    record = run_point(method=method, **SMALL)
    # A first write faults (a page allocated and zeroed); a second is a plain write.
    assert record["fresh_page_us"] > record["touched_page_us"] > 0


def test_memory_returned_to_the_host_is_counted_or_said_why_not(run_point):
    record = run_point(method="fork", **SMALL)
    assert record["host_memory_return"] == host.memory_return()
    if host.REPORTED_KIB.exists():
        assert record["host_reported_kib"] >= 0 and "host_reported_source" not in record
    else:
        assert "host_reported_kib" not in record and record["host_reported_source"].startswith("not counted")
    assert record["steal_s"] >= 0 and 0 <= record["steal_share"] <= 1


def test_a_counter_missing_at_either_end_is_absent_with_its_reason():
    keys = host.during(
        {"steal_ticks": 5, "monotonic_s": 1.0}, {"reported_kib": 10, "steal_ticks": 7, "monotonic_s": 2.0}
    )
    assert "host_reported_kib" not in keys and keys["host_reported_source"].startswith("not counted")
    ticks = os.sysconf("SC_CLK_TCK")
    assert keys["steal_s"] == pytest.approx(2 / ticks)
    # Two ticks stolen over one second of wall time on every CPU the machine has.
    assert keys["steal_share"] == pytest.approx(2 / ticks / os.sysconf("SC_NPROCESSORS_ONLN"))


def test_warm_memory_is_what_the_point_allocates_and_outside_the_timed_span(run_point):
    point = {"method": "fork", "memcpy_mib": 8, **SMALL}
    warm = run_point(warm_mib="auto", **point)
    assert warm["warm_mib"] == "auto"
    assert warm["warm_mib_effective"] == plan_point.memory_needed_mib(warm)
    assert warm["warm_s"] > 0
    cold = run_point(warm_mib=0, **point)
    assert "warm_s" not in cold
