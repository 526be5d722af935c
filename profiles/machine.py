"""The machine the profiler runs on: its identity, and pinning the process to a profile's CPUs.

Every profiler report names the machine it measured on, so a figure is never mistaken for one
taken on the profile's device. The identity comes from /proc/cpuinfo (x86 "model name"; on ARM
the core's part number, which /proc/cpuinfo gives instead of a name), /proc/device-tree/model
(Raspberry Pi, Jetson boards) and the installed runtime versions. psutil (profiles.memory) has
no CPU model or board name, and names no ARM core: the part-number table stays here.
"""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from profiles.profile import Profile

# ARM Ltd. (implementer 0x41) part numbers -> core names, from the Linux kernel's
# arch/arm64/include/asm/cputype.h (ARM_CPU_PART_*).
ARM_PARTS = {
    "0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
    "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
    "0xd0c": "Neoverse-N1", "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd42": "Cortex-A78AE",
    "0xd44": "Cortex-X1", "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd48": "Cortex-X2",
    "0xd4b": "Cortex-A78C", "0xd4d": "Cortex-A715",
}


@dataclass(frozen=True)
class Machine:
    """Where a measurement was taken."""

    cpu_model: str          # "AMD EPYC", "2x Cortex-A75 + 6x Cortex-A55", ...
    board: str              # /proc/device-tree/model, "" on PCs and VMs
    arch: str               # platform.machine()
    cores: int              # CPUs this process may run on
    cores_total: int        # os.cpu_count()
    os: str
    python: str
    numpy: str
    onnxruntime: str
    openvino: str

    def identity(self) -> str:
        """Text a profile's `device.match` strings are looked for in."""
        return f"{self.cpu_model} | {self.board}"

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        """One line naming the machine, for benchmark and report headers."""
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        return (f"{self.cpu_model}, {self.cores} of {self.cores_total} CPUs, {self.os}, "
                f"Python {self.python}, numpy {self.numpy}, onnxruntime {self.onnxruntime}, "
                f"openvino {self.openvino}; 1-min load average {load:.2f}")


def _cpuinfo_model(text: str) -> str:
    """CPU name from /proc/cpuinfo text: "model name" (x86), or ARM core names by part number."""
    models, parts = [], []
    implementer = None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "model name" and value:
            models.append(value)
        elif key == "cpu implementer":
            implementer = value
        elif key == "cpu part":
            name = ARM_PARTS.get(value.lower()) if implementer == "0x41" else None
            parts.append(name or f"CPU part {value} (implementer {implementer})")
    if parts:
        counts: dict[str, int] = {}
        for p in parts:
            counts[p] = counts.get(p, 0) + 1
        return " + ".join(f"{n}x {p}" for p, n in counts.items())
    if models:
        return models[0]
    return platform.processor() or "unknown CPU"


def _version(dist: str) -> str:
    """Installed version from package metadata: no import (OpenVINO's import alone costs tens
    of MB of RSS, which would pollute the peak-memory figure of an onnxruntime run)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))} ({platform.system()} {platform.release()})"
    except OSError:
        pass
    return platform.platform()


def this_machine() -> Machine:
    """Identify the machine this process runs on (reads /proc and package metadata)."""
    try:
        cpu = _cpuinfo_model(Path("/proc/cpuinfo").read_text())
    except OSError:
        cpu = platform.processor() or "unknown CPU"
    try:
        board = Path("/proc/device-tree/model").read_bytes().rstrip(b"\0").decode(errors="replace")
    except OSError:
        board = ""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    import numpy
    return Machine(cpu_model=cpu, board=board, arch=platform.machine(), cores=usable,
                   cores_total=os.cpu_count() or usable, os=_os_name(),
                   python=sys.version.split()[0], numpy=numpy.__version__,
                   onnxruntime=_version("onnxruntime"), openvino=_version("openvino"))


def is_profile_device(profile: Profile, machine: Machine) -> bool:
    """True when `machine` is the device `profile` describes (so figures are not a proxy).

    The local profile is this machine by definition; any other needs its architecture and
    one of its `device.match` strings found in the machine's CPU identity.
    """
    if profile.device_local:
        return True
    arch = {"arm64": "aarch64", "amd64": "x86_64"}.get(machine.arch.lower(), machine.arch.lower())
    if arch != profile.device_arch:
        return False
    ident = machine.identity().lower()
    return any(m.lower() in ident for m in profile.device_match)


@dataclass(frozen=True)
class Placement:
    """How the run was placed on this machine's CPUs, reported either way."""

    threads_profile: int
    threads_used: int
    affinity_requested: tuple[int, ...]
    affinity_applied: tuple[int, ...] | None   # None: not applied
    affinity_before: tuple[int, ...] | None
    note: str

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("affinity_requested", "affinity_applied", "affinity_before"):
            d[k] = list(d[k]) if d[k] is not None else None
        return d


def pin_to_profile(profile: Profile) -> Placement:
    """Pin this process to the profile's CPUs where the OS allows; choose the thread count.

    CPUs the profile names but this machine lacks are dropped (reported); threads are capped
    at the CPUs the process may use, since oversubscribed spinning inference threads measure
    contention, not the model. `restore_affinity` afterwards puts the original affinity back.
    """
    requested = tuple(profile.runtime_cpu_affinity)
    getaff = getattr(os, "sched_getaffinity", None)
    setaff = getattr(os, "sched_setaffinity", None)
    before = tuple(sorted(getaff(0))) if getaff else None
    applied = None
    notes = []
    if requested and setaff is None:
        notes.append("this OS has no sched_setaffinity: CPU affinity not applied")
    elif requested:
        available = set(before or range(os.cpu_count() or 1))
        keep = tuple(c for c in requested if c in available)
        dropped = [c for c in requested if c not in available]
        if dropped:
            notes.append(f"CPU(s) {dropped} of the profile do not exist here "
                         f"(this process may use {sorted(available)})")
        if keep:
            try:
                setaff(0, set(keep))
                applied = keep
                notes.append(f"pinned to CPU(s) {list(keep)}")
            except OSError as exc:
                notes.append(f"sched_setaffinity refused ({exc}): affinity not applied")
        else:
            notes.append("none of the profile's CPUs exists here: affinity not applied")
    else:
        notes.append("profile sets no CPU affinity: left as is")
    usable = len(applied) if applied else (len(before) if before else (os.cpu_count() or 1))
    threads = min(profile.runtime_threads, usable)
    if threads < profile.runtime_threads:
        notes.append(f"threads capped at {threads} (profile asks {profile.runtime_threads}, "
                     f"{usable} CPU(s) usable here)")
    return Placement(threads_profile=profile.runtime_threads, threads_used=threads,
                     affinity_requested=requested, affinity_applied=applied,
                     affinity_before=before, note="; ".join(notes))


def restore_affinity(placement: Placement) -> None:
    """Restore the affinity the process had before `pin_to_profile`."""
    if placement.affinity_applied is not None and placement.affinity_before is not None:
        try:
            os.sched_setaffinity(0, set(placement.affinity_before))
        except OSError:
            pass
