"""Run points inside a virtual machine booting another kernel, with N NUMA nodes.

One boot runs a batch of points: plain qemu-system-x86_64 boots a Debian
kernel image (/boot/vmlinuz-<release>, the release the points' vm_kernel
names: the newest installed of a series such as 6.1, or an exact release)
with a small busybox initramfs that loads the guest kernel's virtio and 9p
modules, mounts the host's / read-only over 9p, a writable share over the batch
folder and a tmpfs in the guest's memory at its tmp/ (the writable folder of
what a point runs there), and runs a shell script that the host wrote there.
For each point the script checks what the guest offers (nodes, THP, delay
accounting), sets the point's knobs with plain writes, reads the guest's
environment back under them, runs the point's command (GuestRun), puts the
knobs back, and leaves the command's output beside it. A benchmark point's
command is the host's compiled cowsnap-bench, fed the Params text on stdin
(no Python or cppyy in the guest); a watch point's is the host's Python
running the watch (cowsnap.measure.watch.guest). The host turns those files
into records.

KVM is used only where the CPU offers hardware virtualization (vmx/svm) and
/dev/kvm opens; elsewhere the guest runs under TCG (software emulation), and
its records say so (`virtualized`): functional truth, not timings.
"""

from __future__ import annotations

import gzip
import lzma
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cowsnap.measure import checks, environment, knobs, records, spawn
from cowsnap.plan import kernels
from cowsnap.plan import point as plan_point

BOOT_DIR = Path("/boot")
MODULES_DIR = Path("/lib/modules")
QEMU = "qemu-system-x86_64"
BOOTS = 2  # tries of a boot whose guest kernel panicked before any point ran
KEEP_VARIABLE = "COWSNAP_VM_KEEP"  # set: the boot's folder (console, scripts, results) is kept
# Modules the guest needs to reach the host's files, in load order once
# their dependencies (modules.dep) are added; built-in ones are skipped.
GUEST_MODULES = ("virtio_pci", "9pnet_virtio", "9p")
# The batch folder's tmpfs in the guest's memory: the writable folder of what a point runs there.
GUEST_TMP = "tmp"
# Under TCG every vCPU reads one TSC, the host's clock, but a guest kernel may
# find its vCPUs' TSCs unsynchronized while it boots (6.1 does, with 2 vCPUs),
# mark the TSC and with it sched_clock unstable, and then delay accounting
# drops copies (environment.SCHED_CLOCK_UNSTABLE): tsc=reliable skips that
# check. Under KVM the guest's clock is its hypervisor's, as on any KVM guest.
GUEST_CLOCK = {"tcg": " tsc=reliable", "kvm": ""}


def installed_kernels() -> list[str]:
    """Kernel releases that can boot here: an image in /boot and its modules."""
    return sorted(
        path.name.removeprefix("vmlinuz-")
        for path in BOOT_DIR.glob("vmlinuz-*")
        if (MODULES_DIR / path.name.removeprefix("vmlinuz-") / "modules.dep").exists()
    )


def release_of(vm_kernel: str) -> str:
    """The installed release a point's vm_kernel boots: the newest of a
    series, an exact release as named ('' when none is installed)."""
    return kernels.resolve(vm_kernel, installed_kernels())


def busybox() -> str:
    return shutil.which("busybox") or ""


def missing(vm_kernel: str) -> str:
    """Why a point with this guest kernel cannot run here ('' when it can)."""
    install = kernels.install_command(vm_kernel)
    if not shutil.which(QEMU):
        return f"vm_kernel={vm_kernel}: {QEMU} is not installed; install it with: {install}"
    if not busybox():
        return f"vm_kernel={vm_kernel}: busybox is not installed; install it with: {install}"
    if not shutil.which("cpio"):
        return f"vm_kernel={vm_kernel}: cpio (packs the VM's initramfs) is not installed; install it with: {install}"
    if release_of(vm_kernel):
        return ""
    if kernels.is_series(vm_kernel):
        return (
            f"vm_kernel={vm_kernel}: no kernel of the {vm_kernel} series is installed "
            f"(/boot/vmlinuz-{vm_kernel}.*); install the newest with (as root, in the repository): {install}"
        )
    return (
        f"vm_kernel={vm_kernel}: this kernel is not installed (/boot/vmlinuz-{vm_kernel}); install it with: {install}"
    )


def accelerator() -> str:
    """'kvm' where hardware virtualization really is there, else 'tcg'.

    A paravirtual /dev/kvm without vmx/svm in the CPU flags (nested, as on
    the development VM) aborts or crawls: it counts as absent."""
    flags = environment.read_text(Path("/proc/cpuinfo"))
    has_flag = any(f" {flag}" in flags for flag in ("vmx", "svm"))
    return "kvm" if has_flag and os.access("/dev/kvm", os.R_OK | os.W_OK) else "tcg"


# --- the guest ---


def _module_order(release: str) -> list[Path]:
    """The .ko files GUEST_MODULES need, dependencies first."""
    root = MODULES_DIR / release
    deps = {}
    for line in (root / "modules.dep").read_text().splitlines():
        name, _, rest = line.partition(":")
        deps[name] = rest.split()
    by_name = {Path(name).name.split(".ko")[0].replace("-", "_"): name for name in deps}
    order: list[str] = []

    def add(name: str) -> None:
        for dep in reversed(deps[name]):
            add(dep)
        if name not in order:
            order.append(name)

    for module in GUEST_MODULES:
        if module in by_name:
            add(by_name[module])
    return [root / name for name in order]


INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.list); do insmod /modules/$m 2>/dev/null; done
mkdir -p /host
# The host's files are read only: the guest caches them (cache=loose), so a program started twice is read once.
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /host || echo "cowsnap-vm: no root"
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t debugfs debug /host/sys/kernel/debug 2>/dev/null
mount -t devtmpfs dev /host/dev
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 batch /host{batch} || echo "cowsnap-vm: no batch share"
mkdir -p /host{batch}/{tmp} && mount -t tmpfs -o mode=1777 tmp /host{batch}/{tmp}
chroot /host /bin/sh {batch}/batch.sh > /host{batch}/batch.log 2>&1
echo "cowsnap-vm: batch exit $?"
umount /host{batch}/{tmp}
sync
umount /host{batch}
poweroff -f
"""


def initramfs(release: str, batch: Path, out: Path) -> Path:
    """A gzip'd cpio: busybox, an init that runs batch/batch.sh, the modules."""
    tree = Path(tempfile.mkdtemp(prefix="initramfs.", dir=out.parent))
    try:
        for folder in ("bin", "proc", "sys", "dev", "modules"):
            (tree / folder).mkdir()
        shutil.copy(busybox(), tree / "bin" / "busybox")
        names = []
        for module in _module_order(release):
            name = module.name.removesuffix(".xz")
            data = module.read_bytes()
            (tree / "modules" / name).write_bytes(lzma.decompress(data) if module.suffix == ".xz" else data)
            names.append(name)
        (tree / "modules.list").write_text("\n".join(names) + "\n")
        init = tree / "init"
        init.write_text(INIT.replace("{batch}", str(batch)).replace("{tmp}", GUEST_TMP))
        init.chmod(0o755)
        files = subprocess.run(["find", "."], cwd=tree, capture_output=True, text=True, check=True).stdout
        archive = subprocess.run(
            ["cpio", "-o", "-H", "newc", "--quiet"], cwd=tree, input=files.encode(), capture_output=True, check=True
        ).stdout
        out.write_bytes(gzip.compress(archive, compresslevel=1))
        return out
    finally:
        shutil.rmtree(tree, ignore_errors=True)


KNOB_FUNCTIONS = r"""
sel() { sed 's/.*\[\(.*\)\].*/\1/' "$1"; }
setk() {
  old=$(sel "$1"); echo "$2" > "$1" 2>/dev/null; now=$(sel "$1")
  printf '%s\t%s\n' "$1" "$old" >> "$B/knobs.restore"
  [ "$now" = "$2" ] || reason="could not set $1 to $2 (it is $now)"
}
restore() {
  [ -f "$B/knobs.restore" ] || return 0
  tac "$B/knobs.restore" | while IFS="$(printf '\t')" read -r p v; do echo "$v" > "$p"; done
  rm -f "$B/knobs.restore"
}
need() { [ -z "$reason" ] && ! eval "$1" && reason="$2"; true; }
mthp_offered() {
  o=$(ls $THP 2>/dev/null | sed -n 's/^hugepages-\([0-9]*\)kB$/mthp-\1k/p' | tr '\n' ' ')
  echo "${o:-none}"
}
env_of() {
  printf 'kernel\t%s\n' "$(uname -r)"
  printf 'cpu_model\t%s\n' "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)"
  printf 'online_cpus\t%s\n' "$(getconf _NPROCESSORS_ONLN)"
  printf 'numa_nodes\t%s\n' "$(ls -d /sys/devices/system/node/node[0-9]* | wc -l)"
  printf 'mem_total_mib\t%s\n' "$(( $(sed -n 's/^MemTotal: *\([0-9]*\).*/\1/p' /proc/meminfo) / 1024 ))"
  printf 'clocksource\t%s\n' "$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)"
  printf 'thp_enabled\t%s\n' "$(sel $THP/enabled 2>/dev/null || echo unavailable)"
  printf 'thp_defrag\t%s\n' "$(sel $THP/defrag 2>/dev/null || echo unavailable)"
  for d in /sys/kernel/mm/hugepages/hugepages-*kB; do
    s=${d##*/hugepages-}
    printf 'hugetlb_%s_total\t%s\nhugetlb_%s_free\t%s\n' "$s" "$(cat $d/nr_hugepages)" "$s" "$(cat $d/free_hugepages)"
  done
}
THP=/sys/kernel/mm/transparent_hugepage
NODE=/sys/devices/system/node
"""


def check_line(check: checks.Check) -> str:
    """A check as the guest's script runs it: the reason kept when it fails."""
    test = f'[ -n "$(cat {check.path} 2>/dev/null)" ]' if check.nonempty else f"[ -e {check.path} ]"
    reason = check.reason.format(nodes="$(cat $NODE/online)", offered="$(mthp_offered)")
    return f'need {shlex.quote(test)} "{reason}"'


def knob_line(knob: checks.Knob) -> str:
    """A knob as the guest's script sets it; KnobError for one off the allow-list."""
    if not knobs.allowed(knob.path, knob.value):
        raise knobs.KnobError(f"cowsnap does not change {knob.path} (or not to {knob.value!r})")
    line = f"setk {knob.path} {shlex.quote(knob.value)}"
    return f"[ -e {knob.path} ] && {line}" if knob.if_present else line


@dataclass(frozen=True)
class GuestRun:
    """What a VM's guest runs for one point, and how the host reads what it
    left: the files the host writes first (path -> text), what the guest
    kernel must offer (the point is skipped with the reason otherwise), the
    knobs set around it, the command (a simple shell command, its output
    becomes <i>.result) and the parser of that output into measured keys.
    The benchmark (cowsnap.measure.bench.runner.bench_run) and the watch
    (cowsnap.measure.watch.guest.guest_run) each make theirs."""

    files: dict[Path, str]
    checks: list[checks.Check]
    knobs: list[checks.Knob]
    command: str
    parse: Callable[[str], dict]


# A point's GuestRun from the point, the batch folder and its index in the batch.
GuestRunOf = Callable[[dict, Path, int], GuestRun]


# The scheduler's debug file's head (environment.sched_clock reads it on the host).
SCHED_DEBUG_FUNCTION = (
    "sched_debug() { " + " || ".join(f"head -c 4096 {path} 2>/dev/null" for path in environment.SCHED_DEBUG) + "; }"
)


def batch_script(runs: list[GuestRun], batch: Path, point_timeout_s: int) -> str:
    """The shell script the guest runs: each point in turn, files <i>.*."""
    lines = ["#!/bin/sh", f"B={shlex.quote(str(batch))}", KNOB_FUNCTIONS, SCHED_DEBUG_FUNCTION]
    for index, run in enumerate(runs):
        lines.append(f"# point {index}\nreason=''")
        lines += [check_line(check) for check in run.checks]
        knob_lines = [knob_line(knob) for knob in run.knobs]
        if knob_lines:
            lines.append('[ -z "$reason" ] && { ' + "; ".join(knob_lines) + "; }")
        lines.append(f"env_of > $B/{index}.env")
        lines.append(f"sched_debug > $B/{index}.sched")
        lines.append(
            f'[ -z "$reason" ] && timeout -s KILL {point_timeout_s} {run.command} '
            f"> $B/{index}.result 2> $B/{index}.stderr"
        )
        lines.append("restore")
        lines.append(f'printf "%s" "$reason" > $B/{index}.skip')
    lines.append("sync")
    return "\n".join(lines) + "\n"


def qemu_command(
    release: str, nodes: int, cpus: int, memory_mib: int, batch: Path, initrd: Path, accel: str
) -> list[str]:
    per_node = (memory_mib // nodes) // 2 * 2
    command = [QEMU, "-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none", "-no-reboot"]
    command += ["-accel", "kvm", "-cpu", "host"] if accel == "kvm" else ["-accel", "tcg,thread=multi", "-cpu", "max"]
    command += ["-m", f"{per_node * nodes}M", "-smp", str(cpus)]
    per_cpus = cpus // nodes
    for node in range(nodes):
        first = node * per_cpus
        command += ["-object", f"memory-backend-ram,id=m{node},size={per_node}M"]
        command += ["-numa", f"node,nodeid={node},cpus={first}-{first + per_cpus - 1},memdev=m{node}"]
    command += ["-kernel", str(BOOT_DIR / f"vmlinuz-{release}"), "-initrd", str(initrd)]
    command += ["-append", "console=ttyS0 quiet loglevel=3 panic=-1 rdinit=/init" + GUEST_CLOCK[accel]]
    command += ["-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap"]
    command += ["-device", "virtio-9p-pci,fsdev=root,mount_tag=hostroot"]
    command += ["-fsdev", f"local,id=batch,path={batch},security_model=none,multidevs=remap"]
    command += ["-device", "virtio-9p-pci,fsdev=batch,mount_tag=batch"]
    command += ["-chardev", "stdio,id=serial,signal=off", "-serial", "chardev:serial"]
    return command


def run_batch(points: list[dict], guest_run: GuestRunOf, folder: Path, timeout_s: float = 0) -> list[dict]:
    """Boots one VM (the release the points' vm_kernel names, with their
    vm_nodes) and runs every point in it, each as guest_run makes it; the
    measured keys of each point (what its GuestRun's parser read, plus the
    guest's environment), 'failed' where the VM gave no result."""
    installed, nodes = installed_kernels(), points[0]["vm_nodes"]
    release = kernels.resolve(points[0]["vm_kernel"], installed)
    assert release, f"vm_kernel={points[0]['vm_kernel']}: no such kernel installed"
    assert all((kernels.resolve(p["vm_kernel"], installed), p["vm_nodes"]) == (release, nodes) for p in points), (
        "one boot, one kernel and topology"
    )
    folder = Path(folder).resolve()
    batch = folder / "batch"
    shutil.rmtree(batch, ignore_errors=True)
    batch.mkdir(parents=True)
    per_point = plan_point.vm_point_limit_s(points)  # what the dry run's bound takes it to be
    runs = [guest_run(point, batch, index) for index, point in enumerate(points)]
    for run in runs:
        for path, text in run.files.items():
            path.write_text(text)
    (batch / "batch.sh").write_text(batch_script(runs, batch, per_point))
    initrd = initramfs(release, batch, folder / "initramfs.cpio.gz")
    accel = accelerator()
    cpus, memory = plan_point.vm_shape(points)
    command = qemu_command(release, nodes, cpus, memory, batch, initrd, accel)
    timeout = timeout_s or 120 + per_point * len(points)
    started = time.monotonic()
    console = folder / "console.log"
    # A guest kernel that panics while booting under emulation, before the
    # first point started, is booted once more: no point has run yet.
    for _ in range(BOOTS):
        try:
            with open(console, "wb") as out:
                done = subprocess.run(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=timeout,
                    preexec_fn=spawn.die_with_parent,  # a killed job leaves no VM running
                )
            trouble = "" if done.returncode == 0 else f"qemu exited with {done.returncode}"
        except subprocess.TimeoutExpired:
            trouble = f"the VM did not finish in {timeout:.0f} s"
        if (batch / "0.env").exists() or "Kernel panic" not in environment.read_text(console):
            break
    elapsed = time.monotonic() - started
    tail = " | ".join(environment.read_text(console).splitlines()[-4:])
    results = []
    for index in range(len(points)):
        env = {}
        for line in environment.read_text(batch / f"{index}.env").splitlines():
            key, _, value = line.partition("\t")
            env[key] = int(value) if value.isdigit() and key != "kernel" else value
        guest = {
            **env,
            **environment.sched_clock(environment.read_text(batch / f"{index}.sched")),
            "virtualized": accel,
            "host_kernel": os.uname().release,
            "vm_boot_s": elapsed,
            "vm_kernel_release": release,
        }
        skip = environment.read_text(batch / f"{index}.skip")
        result_path = batch / f"{index}.result"
        if not env:
            measured = records.failed(f"no result from the VM ({trouble or 'no output'}; console: {tail})")
        elif skip:
            measured = records.skipped(skip)
        elif not result_path.exists() or not result_path.read_text():
            stderr = environment.read_text(batch / f"{index}.stderr")
            measured = records.failed(f"the point gave no result in the VM ({trouble}) {stderr}".strip())
        else:
            measured = runs[index].parse(result_path.read_text())
        results.append({**guest, **measured})
    return results


def record_name(run_id: str) -> str:
    """A run's record in a boot's folder: experiment_point_repetition.json."""
    return run_id.replace("/", "_") + ".json"
