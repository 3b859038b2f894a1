"""Guest kernels by series: which installed kernel a vm_kernel value boots.

A point's vm_kernel is `host`, a series (`6.1`, `6.12`: the newest kernel of
that series installed where the point runs) or an exact kernel release
(`uname -r` of the guest, the suffix of /boot/vmlinuz-<release>). The point
keeps the value as given, so its id does not change when the distribution
replaces a kernel's ABI; the record says which release booted.
"""

from __future__ import annotations

import re

SERIES = re.compile(r"[0-9]+\.[0-9]+")
# Installs qemu, busybox, cpio and the newest kernel of a series (run as root
# in the repository).
SERIES_INSTALL = "bash .ci/kernels {series}"
RELEASE_INSTALL = "apt-get install -y qemu-system-x86 busybox-static cpio linux-image-{release}"


def is_series(vm_kernel: str) -> bool:
    return SERIES.fullmatch(vm_kernel) is not None


def series_of(release: str) -> str:
    """A release's series, its first two numbers: '6.12.118+deb12-amd64' -> '6.12'."""
    found = SERIES.match(release)
    return found.group() if found else ""


def version_key(release: str) -> tuple:
    """Version order of releases: by their numbers in turn ('6.1.0-9-amd64'
    before '6.1.0-52-amd64', '6.12.9+deb12-amd64' before '6.12.118+deb12-amd64'),
    then the shorter name (of one version, Debian's plain '-amd64' flavour
    ranks above '-cloud-amd64' and '-rt-amd64'), then the name."""
    return tuple(int(n) for n in re.findall(r"[0-9]+", release)), -len(release), release


def resolve(vm_kernel: str, installed: list[str]) -> str:
    """The installed release a vm_kernel value boots ('' when none is installed):
    the newest release of a series, an exact release as named."""
    if not is_series(vm_kernel):
        return vm_kernel if vm_kernel in installed else ""
    releases = [release for release in installed if series_of(release) == vm_kernel]
    return max(releases, key=version_key, default="")


def install_command(vm_kernel: str) -> str:
    """The command that installs what a point with this vm_kernel needs."""
    if is_series(vm_kernel):
        return SERIES_INSTALL.format(series=vm_kernel)
    return RELEASE_INSTALL.format(release=vm_kernel)
