"""What a profiler report is judged by: the profile's budgets, its known-good runtime versions,
and whether the figures are the profile's device's own or a proxy."""

from __future__ import annotations

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from profiles.machine import Machine
from profiles.profile import Profile


def check_budgets(profile: Profile, figures: dict) -> dict:
    """Each budget the profile sets against the measured figure: {limit, measured, pass}."""
    measured = {
        "latency_p90_ms": figures["per_hop"]["p90_ms"],
        "latency_p99_ms": figures["per_hop"]["p99_ms"],
        "peak_rss_mb": figures["memory"]["peak_rss_mb"],
        "model_size_mb": figures["model"]["size_mb"],
        "min_realtime_factor": figures["throughput"]["realtime_factor"],
    }
    out = {}
    for key, limit in profile.budgets().items():
        m = measured[key]
        if m is None:
            ok = False
        elif key.startswith("min_"):
            ok = m >= limit
        else:
            ok = m <= limit
        out[key] = {"limit": limit, "measured": m, "pass": bool(ok)}
    return out


def installed_within_known_good(profile: Profile, machine: Machine) -> dict:
    """Whether this machine's runtime versions lie in the profile's vendor-stated ranges."""
    out = {}
    for dist, spec in (("onnxruntime", profile.known_good_onnxruntime),
                       ("openvino", profile.known_good_openvino)):
        installed = getattr(machine, dist)
        if spec.strip().lower() == "none":
            ok = None
        elif installed == "not installed":
            ok = False
        else:
            try:
                ok = Version(installed) in SpecifierSet(spec)
            except (InvalidVersion, InvalidSpecifier):   # an odd local version string
                ok = None
        out[dist] = {"installed": installed, "known_good": spec, "within": ok}
    return out


def honesty_note(profile: Profile, machine: Machine, on_device: bool) -> str:
    """One sentence saying where the figures come from and what they may stand for."""
    where = f"{machine.cpu_model}{', ' + machine.board if machine.board else ''}, " \
            f"{machine.cores} usable core(s), {machine.arch}"
    if on_device:
        return f"Measured on this machine ({where}), which is the profile's device."
    return (f"Figures are from THIS machine ({where}), not from the profile's device "
            f"({profile.device_cpu}); they are checked against the budgets of profile "
            f"{profile.name!r} as a proxy only and are not scaled to that device.")
