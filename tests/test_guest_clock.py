"""The clock delay accounting reads, in a guest under software emulation.

6.1 finds its two vCPUs' TSCs unsynchronized when it boots under TCG, marks
the TSC and with it sched_clock unstable, and its delay accounting then drops
copies (a Redis BGSAVE's count was 86-92% of its write faults). cowsnap boots
a TCG guest with tsc=reliable (vm.GUEST_CLOCK): every vCPU reads the host's
one clock. Two boots of 6.1, each with a cowpoint watch point (2 vCPUs) and
a benchmark point: as cowsnap boots it (the clock stable, the copies exact),
and without the argument (the clock unstable: the copy counts are absent with
the reason, for the watch and the benchmark alike, never a lower bound shown
as a count). Without qemu, busybox or a 6.1 kernel the module is skipped
with the reason, or fails where CI promised them (COWSNAP_REQUIRE_VM=1).
"""

from __future__ import annotations

import pytest
from test_guest_watch import HALF, watch_keys
from test_vm import no_vm
from test_watch_point import cowpoint  # noqa: F401 (a fixture)

from cowsnap.analyse import aggregate
from cowsnap.measure import environment, guests, vm
from cowsnap.plan import grid

SERIES = "6.1"
UNSTABLE = f"not counted: {environment.SCHED_CLOCK_UNSTABLE}"


def boot(build, cowpoint, folder, clock: dict) -> dict:  # noqa: F811
    points = {
        "watch": watch_keys(cowpoint, vm_kernel=SERIES),
        "bench": grid.resolve(
            {
                "method": "fork",
                "size_mib": 8,
                "memcpy_mib": 0,
                "hold": "writers",
                "release": "none",
                "vm_kernel": SERIES,
            }
        ),
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vm, "GUEST_CLOCK", clock)
        records = guests.run_boot([(p, {"run_id": name}) for name, p in points.items()], build, folder)
    return {record["run_id"]: record for record in records}


@pytest.fixture(scope="module")
def boots(build, cowpoint, tmp_path_factory):  # noqa: F811
    if not vm.release_of(SERIES):
        no_vm(f"no {SERIES} guest kernel installed (bash .ci/kernels {SERIES})")
    if vm.accelerator() != "tcg":
        pytest.skip("under KVM the guest's clock is its hypervisor's: no TSC check to fail")
    return {
        "as booted": boot(build, cowpoint, tmp_path_factory.mktemp("vm"), vm.GUEST_CLOCK),
        "unstable": boot(build, cowpoint, tmp_path_factory.mktemp("vm"), {"tcg": "", "kvm": ""}),
    }


def ok(record: dict) -> dict:
    assert record["status"] == "ok", record["reason"]
    return record


def test_a_guest_under_emulation_keeps_a_stable_sched_clock_and_exact_copies(boots):
    record = ok(boots["as booted"]["watch"])
    assert record["kernel"].startswith(SERIES + ".")
    assert record["sched_clock_stable"] == 1
    assert record["clocksource"] == "tsc"  # the guest's own, read in the guest
    assert record["writer_wpcopy_source"] == "taskstats"
    assert HALF <= record["writer_wpcopy_count_during_snapshot"] <= 1.05 * HALF + 64


def test_the_record_holds_the_guests_clock_not_the_hosts(boots):
    for record in boots["unstable"].values():
        ok(record)
        assert record["sched_clock_stable"] == 0, "6.1 kept its TSC under TCG with 2 vCPUs"
        assert record["clocksource"] != "tsc"  # the TSC marked unstable: hpet or acpi_pm


def test_under_an_unstable_clock_the_watch_counts_no_copies_but_the_childs_private_pages(boots):
    record = ok(boots["unstable"]["watch"])
    assert record["writer_wpcopy_source"] == UNSTABLE
    assert "writer_wpcopy_count" not in record and "writer_wpcopy_count_during_snapshot" not in record
    assert record["writer_minflt_during_snapshot"] >= HALF  # /proc still counts the faults


def test_under_an_unstable_clock_the_benchmarks_copies_are_absent_with_the_reason(boots):
    record = ok(boots["unstable"]["bench"])
    table = aggregate.runs_table([{**record, "experiment": "x", "point_id": "p"}])
    assert table["copies"].isna().all() and table["copies_during_snapshot"].isna().all()
    assert table["copies_source"].iloc[0] == UNSTABLE
    stable = aggregate.runs_table([{**ok(boots["as booted"]["bench"]), "experiment": "x", "point_id": "p"}])
    assert stable["copies_during_snapshot"].iloc[0] >= 0.95 * 8 * 256  # every page, copied while the child held it
