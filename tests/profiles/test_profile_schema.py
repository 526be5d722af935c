"""Device profiles: every shipped one loads; malformed ones are refused naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:      # Python 3.10
    import tomli as tomllib

from edge_ecg.errors import ProfileError
from profiles.profile import (
    PROFILE_DIR,
    SCHEMA,
    Profile,
    list_profiles,
    load_profile,
    parse_profile,
)

REQUIRED_SHIPPED = {"rpi4", "rpi5", "android_tablet", "bedside_x86", "jetson_orin_nano", "local"}


def test_required_profiles_are_shipped():
    assert REQUIRED_SHIPPED <= set(list_profiles())


@pytest.mark.parametrize("name", list_profiles())
def test_shipped_profile_loads_and_is_consistent(name):
    p = load_profile(name)
    assert isinstance(p, Profile)
    assert p.name == name                       # --profile NAME finds the file of that name
    assert p.runtime_threads <= p.device_cores
    assert 0 < p.stream_hop_s <= p.stream_window_s
    assert p.serial_ftdi_latency_timer_ms == 1  # the 16-ms default bursts the data
    assert p.budget_latency_p90_ms > 0 and p.budget_peak_rss_mb > 0
    assert "not measured" in p.known_good_source.lower() or p.device_local
    # The same file by path gives the same profile.
    assert load_profile(PROFILE_DIR / f"{name}.toml") == p


def test_shipped_profiles_comment_the_ftdi_latency_timer():
    for name in list_profiles():
        text = (PROFILE_DIR / f"{name}.toml").read_text()
        assert "16" in text and "burst" in text, name


def test_exactly_one_local_profile():
    assert [n for n in list_profiles() if load_profile(n).device_local] == ["local"]


def test_every_schema_key_used_by_some_shipped_profile_or_optional():
    used = set()
    for name in list_profiles():
        doc = tomllib.loads((PROFILE_DIR / f"{name}.toml").read_text())
        for k, v in doc.items():
            used |= {f"{k}.{s}" for s in v} if isinstance(v, dict) else {k}
    assert {k.path for k in SCHEMA if k.required} <= used


def _base() -> dict:
    return tomllib.loads((PROFILE_DIR / "rpi4.toml").read_text())


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "mine.toml"
    p.write_text(text)
    return p


def _dump(doc: dict) -> str:
    """A minimal TOML writer for the test documents (flat tables of scalars and lists)."""
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return repr(v)
    top = [f"{k} = {val(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for k, v in doc.items():
        if isinstance(v, dict):
            top.append(f"\n[{k}]")
            top += [f"{s} = {val(x)}" for s, x in v.items()]
    return "\n".join(top) + "\n"


def test_user_profile_by_path_round_trips(tmp_path):
    doc = _base()
    doc["name"] = "my_board"
    doc["runtime"]["threads"] = 2
    p = load_profile(_write(tmp_path, _dump(doc)))
    assert p.name == "my_board" and p.runtime_threads == 2
    assert p.runtime_variants == tuple(doc["runtime"]["variants"])
    assert p.path.endswith("mine.toml")


@pytest.mark.parametrize("mutate, key, what", [
    (lambda d: d["runtime"].__setitem__("thread", 2), "runtime.thread", "unknown key"),
    (lambda d: d.__setitem__("colour", "red"), "colour", "unknown key"),
    (lambda d: d["runtime"].__setitem__("threads", "4"), "runtime.threads", "must be an integer"),
    (lambda d: d["runtime"].__setitem__("threads", True), "runtime.threads", "must be an integer"),
    (lambda d: d["runtime"].__setitem__("threads", 2.5), "runtime.threads", "must be an integer"),
    (lambda d: d["budget"].__setitem__("latency_p90_ms", "fast"), "budget.latency_p90_ms",
     "must be a number"),
    (lambda d: d["runtime"].__setitem__("variants", "onnx-int8"), "runtime.variants",
     "must be a list"),
    (lambda d: d["runtime"].__setitem__("cpu_affinity", [1, "2"]), "runtime.cpu_affinity[1]",
     "must be an integer"),
    (lambda d: d["runtime"].pop("backend"), "runtime.backend", "missing required key"),
    (lambda d: d.pop("name"), "name", "missing required key"),
    (lambda d: d["budget"].pop("peak_rss_mb"), "budget.peak_rss_mb", "missing required key"),
    (lambda d: d["stream"].__setitem__("hop_s", 0.0), "stream.hop_s", "out of range"),
    (lambda d: d["device"].__setitem__("cores", 0), "device.cores", "out of range"),
    (lambda d: d["serial"].__setitem__("ftdi_latency_timer_ms", 300),
     "serial.ftdi_latency_timer_ms", "out of range"),
    (lambda d: d["runtime"].__setitem__("backend", "tensorrt"), "runtime.backend", "choose one of"),
    (lambda d: d["runtime"].__setitem__("threads", 8), "runtime.threads", "exceeds device.cores"),
    (lambda d: d["stream"].__setitem__("hop_s", 20.0), "stream.hop_s", "exceeds"),
    (lambda d: d["runtime"].__setitem__("cpu_affinity", [4]), "runtime.cpu_affinity", "CPU 4"),
    (lambda d: d["known_good"].__setitem__("openvino", "latest!"), "known_good.openvino",
     "PEP 440"),
    (lambda d: d.__setitem__("extras", {"x": 1}), "[extras]", "unknown section"),
])
def test_malformed_profile_is_refused_naming_file_and_key(tmp_path, mutate, key, what):
    doc = _base()
    mutate(doc)
    path = _write(tmp_path, _dump(doc))
    with pytest.raises(ProfileError) as err:
        load_profile(path)
    msg = str(err.value)
    assert str(path) in msg, msg
    assert key in msg, msg
    assert what in msg, msg


def test_not_toml_is_refused_naming_the_file(tmp_path):
    path = _write(tmp_path, "name = rpi4\n[device\ncores = 4\n")
    with pytest.raises(ProfileError, match="not valid TOML") as err:
        load_profile(path)
    assert str(path) in str(err.value)


def test_python_code_is_not_a_profile(tmp_path):
    path = _write(tmp_path, "import os\nos.system('echo hi')\n")
    with pytest.raises(ProfileError, match="not valid TOML"):
        load_profile(path)


def test_binary_file_is_refused(tmp_path):
    path = tmp_path / "blob.toml"
    path.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(ProfileError, match="blob.toml"):
        load_profile(path)


def test_unknown_name_lists_the_shipped_profiles():
    with pytest.raises(ProfileError, match="rpi4") as err:
        load_profile("raspberry_pi_9")
    assert "raspberry_pi_9" in str(err.value)


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(tmp_path / "nope.toml")


def test_optional_keys_take_their_defaults():
    doc = _base()
    for k in ("cpu_affinity",):
        doc["runtime"].pop(k)
    doc["budget"].pop("latency_p99_ms")
    doc["serial"].pop("ftdi_latency_timer_ms")
    p = parse_profile(doc, "inline")
    assert p.runtime_cpu_affinity == ()
    assert p.budget_latency_p99_ms is None and "latency_p99_ms" not in p.budgets()
    assert p.serial_ftdi_latency_timer_ms == 16   # FTDI's default, stated in the schema


def test_integer_where_a_number_is_asked_is_accepted():
    doc = _base()
    doc["budget"]["latency_p90_ms"] = 250
    doc["stream"]["hop_s"] = 1
    p = parse_profile(doc, "inline")
    assert p.budget_latency_p90_ms == 250.0 and isinstance(p.stream_hop_s, float)
