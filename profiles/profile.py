"""Device profiles: what a target device is, how the runtime runs there, and its budgets.

A profile is a TOML file (data, never code: read with `tomllib`, checked against `SCHEMA`).
The shipped ones live beside this module; a user passes the path of their own. Every key is
declared in `SCHEMA` with its type, range or choices and whether it is required, so a typo,
a wrong type or an impossible value is refused with `ProfileError` naming the file and the key,
never silently defaulted.

Checked by this table, not by pydantic or jsonschema: profiles are read on the device (the
profiler, `edge-ecg stream --profile`), and measured (Python 3.11, pydantic 2.13.4) a runtime
process with the default bundle open and a profile loaded holds 70.4 MB after ~220 ms; a
pydantic model of the schema adds 8.3 MB (+12%) and ~60 ms; jsonschema's import alone
6.3 MB and ~60 ms. The table is also the keys' documentation, so a library would save only
the ~100 lines of checks, and their messages would need translating back to file and key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from edge_ecg.errors import ProfileError
from edge_ecg.runtime.toml_input import read_toml

PROFILE_DIR = Path(__file__).resolve().parent

BACKENDS = ("onnxruntime", "openvino")
PRECISIONS = ("fp32", "int8")
ARCHES = ("x86_64", "aarch64")


@dataclass(frozen=True)
class Key:
    """One key of the schema: dotted TOML path, Python type, and what values it may take."""

    path: str                       # "runtime.threads"
    type: type                      # str | int | float | bool | list
    required: bool
    doc: str
    lo: float | None = None         # inclusive range for numbers (and list items of numbers)
    hi: float | None = None
    choices: tuple = ()
    item: type | None = None        # element type of a list
    default: Any = None

    @property
    def field(self) -> str:
        """The `Profile` field this key fills: "runtime.threads" -> "runtime_threads"."""
        return self.path.replace(".", "_")


# The schema table. Ranges are sanity bounds (a typo like threads = 400 or hop_s = 0 is refused),
# not recommendations; the recommended values live in the shipped profiles, with their reasons.
SCHEMA: tuple[Key, ...] = (
    Key("name", str, True, "short name, as passed to --profile"),
    Key("description", str, True, "one line: the device and what it is used for"),
    # [device]: what the hardware is. Used to decide whether this machine IS the device.
    Key("device.cpu", str, True, "CPU as the vendor names it, e.g. '4x Cortex-A72 @ 1.8 GHz'"),
    Key("device.arch", str, True, "instruction set: x86_64 or aarch64", choices=ARCHES),
    Key("device.cores", int, True, "CPU cores available to the application", lo=1, hi=256),
    Key("device.memory_mb", int, True, "RAM of the device in MB", lo=64, hi=4_194_304),
    Key("device.os", str, False, "operating system the device runs", default=""),
    Key("device.match", list, False,
        "substrings of this machine's CPU identity (model name, ARM core name, board model) "
        "that mean 'this machine is the device'", item=str, default=()),
    Key("device.local", bool, False,
        "true for the profile of the machine the profiler runs on", default=False),
    # [runtime]: how the runtime runs on it.
    Key("runtime.backend", str, True, "inference backend", choices=BACKENDS),
    Key("runtime.precision", str, True, "weights/activations precision", choices=PRECISIONS),
    Key("runtime.variants", list, True,
        "bundle variant names in order of preference; the first the bundle has is used",
        item=str),
    Key("runtime.threads", int, True, "inference threads (intra-op)", lo=1, hi=256),
    Key("runtime.cpu_affinity", list, False,
        "CPU ids to pin the process to (os.sched_setaffinity); empty = leave as is",
        item=int, lo=0, hi=1023, default=()),
    # [stream]: the stream the device sees.
    Key("stream.window_s", float, True, "model window in seconds (must match the bundle)",
        lo=1.0, hi=60.0),
    Key("stream.hop_s", float, True, "seconds between predictions", lo=0.05, hi=60.0),
    # [serial]: the link from the acquisition front end.
    Key("serial.baud", int, True, "UART baud rate", lo=9600, hi=12_000_000),
    Key("serial.ftdi_latency_timer_ms", int, False,
        "FTDI USB-serial latency timer (1-255 ms, FTDI AN232B-04)", lo=1, hi=255, default=16),
    Key("serial.port", str, False, "default serial port", default=""),
    # [quality]: how far the runtime degrades before it withholds a prediction (issue 17);
    # defaults are edge_ecg.runtime.quality.QualityConfig's, with their reasons there.
    Key("quality.max_missing_frac", float, False,
        "largest share of a window that may be filled (samples lost or non-finite) and still "
        "be predicted on", lo=0.0, hi=0.5, default=0.10),
    Key("quality.max_gap_s", float, False,
        "longest filled run (seconds) a predicted window may touch; 0.12 s = the longest "
        "normal QRS, so no kept gap hides a whole beat", lo=0.0, hi=10.0, default=0.12),
    Key("quality.min_leads", int, False,
        "measured source leads that must remain after masking the leads off or saturated",
        lo=1, hi=12, default=1),
    Key("quality.mask_off_leads", bool, False,
        "mask a lead that is off or saturated and predict on the rest (false: withhold)",
        default=True),
    # [budget]: pass/fail thresholds for the profiler.
    Key("budget.latency_p90_ms", float, True,
        "90th-percentile per-hop processing latency (MLPerf Tiny single-stream style)",
        lo=0.01, hi=600_000.0),
    Key("budget.latency_p99_ms", float, False, "99th-percentile per-hop latency",
        lo=0.01, hi=600_000.0, default=None),
    Key("budget.peak_rss_mb", float, True, "peak resident memory of the runtime process",
        lo=1.0, hi=4_194_304.0),
    Key("budget.model_size_mb", float, False, "size of the model file(s) on disk",
        lo=0.001, hi=65_536.0, default=None),
    Key("budget.min_realtime_factor", float, False,
        "minimum throughput in multiples of real time", lo=0.001, hi=1e7, default=None),
    # [known_good]: runtime versions the vendors say work on this CPU (not measured here).
    Key("known_good.onnxruntime", str, True,
        "PEP 440 version specifier, or 'none' where the vendor ships no build"),
    Key("known_good.openvino", str, True,
        "PEP 440 version specifier, or 'none' where the vendor ships no build"),
    Key("known_good.source", str, True,
        "where the versions come from (support matrix, release notes); say 'not measured here'"),
)

SCHEMA_BY_PATH: dict[str, Key] = {k.path: k for k in SCHEMA}
SECTIONS = tuple(sorted({k.path.split(".")[0] for k in SCHEMA if "." in k.path}))


@dataclass(frozen=True)
class Profile:
    """A validated device profile. Fields are the schema keys with '.' -> '_'."""

    name: str
    description: str
    device_cpu: str
    device_arch: str
    device_cores: int
    device_memory_mb: int
    runtime_backend: str
    runtime_precision: str
    runtime_variants: tuple[str, ...]
    runtime_threads: int
    stream_window_s: float
    stream_hop_s: float
    serial_baud: int
    budget_latency_p90_ms: float
    budget_peak_rss_mb: float
    known_good_onnxruntime: str
    known_good_openvino: str
    known_good_source: str
    device_os: str = ""
    device_match: tuple[str, ...] = ()
    device_local: bool = False
    runtime_cpu_affinity: tuple[int, ...] = ()
    serial_ftdi_latency_timer_ms: int = 16
    serial_port: str = ""
    budget_latency_p99_ms: float | None = None
    budget_model_size_mb: float | None = None
    budget_min_realtime_factor: float | None = None
    quality_max_missing_frac: float = 0.10
    quality_max_gap_s: float = 0.12
    quality_min_leads: int = 1
    quality_mask_off_leads: bool = True
    path: str = field(default="", compare=False)   # the file it was read from

    def budgets(self) -> dict[str, float]:
        """The budgets this profile sets (absent optional ones left out)."""
        out = {}
        for f in fields(self):
            if f.name.startswith("budget_") and getattr(self, f.name) is not None:
                out[f.name.removeprefix("budget_")] = getattr(self, f.name)
        return out

    def quality(self) -> dict:
        """The `[quality]` limits as keyword arguments of the runtime's `QualityConfig`."""
        return {f.name.removeprefix("quality_"): getattr(self, f.name) for f in fields(self)
                if f.name.startswith("quality_")}

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d


def _flatten(doc: dict, where: str) -> dict[str, Any]:
    """{"runtime": {"threads": 4}} -> {"runtime.threads": 4}; refuses unknown sections/keys."""
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            if key not in SECTIONS:
                raise ProfileError(
                    f"{where}: unknown section [{key}]; known sections: {', '.join(SECTIONS)}"
                )
            for sub, v in value.items():
                path = f"{key}.{sub}"
                if isinstance(v, dict):
                    raise ProfileError(f"{where}: key {path!r} is a table; profiles nest one level")
                flat[path] = v
        else:
            flat[key] = value
    unknown = [p for p in flat if p not in SCHEMA_BY_PATH]
    if unknown:
        p = unknown[0]
        section = p.split(".")[0] if "." in p else None
        near = [k.path for k in SCHEMA if section and k.path.startswith(section + ".")]
        hint = f"; keys of [{section}]: {', '.join(near)}" if near else ""
        raise ProfileError(f"{where}: unknown key {p!r}{hint}")
    return flat


def _type_name(t: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false",
            list: "a list"}[t]


def _check_scalar(key: Key, value: Any, t: type, where: str, label: str) -> Any:
    # bool is a subclass of int in Python: `threads = true` must not pass as 1.
    if t is bool:
        ok = isinstance(value, bool)
    elif t is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, t)
    if not ok:
        raise ProfileError(
            f"{where}: key {label!r} must be {_type_name(t)}, got {type(value).__name__} {value!r}"
        )
    if t is float:
        try:
            value = float(value)
        except OverflowError:  # a valid TOML integer of hundreds of digits
            value = math.inf
        if not math.isfinite(value):
            raise ProfileError(f"{where}: key {label!r} must be finite, got {value!r}")
    if key.choices and value not in key.choices:
        raise ProfileError(
            f"{where}: key {label!r} is {value!r}; choose one of {', '.join(map(str, key.choices))}"
        )
    if t in (int, float) and ((key.lo is not None and value < key.lo)
                              or (key.hi is not None and value > key.hi)):
        raise ProfileError(
            f"{where}: key {label!r} = {value!r} is out of range [{key.lo:g}, {key.hi:g}]"
        )
    return value


def _check_value(key: Key, value: Any, where: str) -> Any:
    if key.type is list:
        if not isinstance(value, list):
            raise ProfileError(
                f"{where}: key {key.path!r} must be a list, got {type(value).__name__} {value!r}"
            )
        return tuple(_check_scalar(key, v, key.item, where, f"{key.path}[{i}]")
                     for i, v in enumerate(value))
    return _check_scalar(key, value, key.type, where, key.path)


def _check_version_spec(value: str, where: str, path: str) -> None:
    if value.strip().lower() == "none":
        return
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        SpecifierSet(value)
    except InvalidSpecifier as exc:
        raise ProfileError(
            f"{where}: key {path!r} = {value!r} is not a PEP 440 version specifier "
            "(e.g. '>=1.17,<2') nor 'none'"
        ) from exc


def parse_profile(doc: dict, where: str = "<profile>") -> Profile:
    """Validate a TOML document (already parsed) against `SCHEMA` and build a `Profile`."""
    flat = _flatten(doc, where)
    missing = [k.path for k in SCHEMA if k.required and k.path not in flat]
    if missing:
        raise ProfileError(f"{where}: missing required key {missing[0]!r}"
                           + (f" (and {', '.join(missing[1:])})" if len(missing) > 1 else ""))
    values: dict[str, Any] = {}
    for key in SCHEMA:
        if key.path in flat:
            values[key.field] = _check_value(key, flat[key.path], where)
        elif key.default is not None:
            values[key.field] = key.default
    # Cross-key checks: each names the key to change.
    if not values["runtime_variants"]:
        raise ProfileError(f"{where}: key 'runtime.variants' is empty; name at least one variant")
    if values["stream_hop_s"] > values["stream_window_s"]:
        raise ProfileError(
            f"{where}: key 'stream.hop_s' = {values['stream_hop_s']} exceeds stream.window_s = "
            f"{values['stream_window_s']}; samples between windows would never be analysed"
        )
    if values["runtime_threads"] > values["device_cores"]:
        raise ProfileError(
            f"{where}: key 'runtime.threads' = {values['runtime_threads']} exceeds device.cores = "
            f"{values['device_cores']}; oversubscribed threads only add contention"
        )
    bad = [c for c in values.get("runtime_cpu_affinity", ()) if c >= values["device_cores"]]
    if bad:
        raise ProfileError(
            f"{where}: key 'runtime.cpu_affinity' names CPU {bad[0]}, but device.cores = "
            f"{values['device_cores']} (CPU ids run 0..{values['device_cores'] - 1})"
        )
    for path in ("known_good.onnxruntime", "known_good.openvino"):
        _check_version_spec(values[SCHEMA_BY_PATH[path].field], where, path)
    return Profile(path=where, **values)


def read_profile(path: str | Path) -> Profile:
    """Read and validate one profile file. Raises `ProfileError` naming the file and key."""
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"profile file {path} does not exist; pass a .toml file or a name "
                           f"from: {', '.join(list_profiles())}")
    return parse_profile(read_toml(path, ProfileError, "a profile"), where=str(path))


def list_profiles() -> list[str]:
    """Names of the shipped profiles (the .toml files beside this module), sorted."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by name (`rpi4`), or a user's profile by path (`./my_board.toml`)."""
    s = str(name_or_path)
    looks_like_path = s.endswith(".toml") or "/" in s or "\\" in s
    if not looks_like_path:
        shipped = PROFILE_DIR / f"{s}.toml"
        if shipped.is_file():
            return read_profile(shipped)
        raise ProfileError(
            f"no shipped profile named {s!r}; shipped: {', '.join(list_profiles())} "
            "(or pass the path of your own .toml)"
        )
    return read_profile(Path(s))
