"""Hostile or truncated bundles and malformed profiles: the loaders answer with their own
error (BundleError, ProfileError), naming what is wrong, never another exception type."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edge_ecg.errors import BundleError, ProfileError

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / "profiles" / "local.toml"


@pytest.fixture()
def bundle_copy(rel_bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(rel_bundle, b)
    return b


def _set_manifest(b: Path, doc_or_text) -> None:
    text = doc_or_text if isinstance(doc_or_text, str) else json.dumps(doc_or_text)
    (b / "manifest.json").write_text(text)


def _doc(b: Path) -> dict:
    return json.loads((b / "manifest.json").read_text())


def test_truncated_manifest_is_refused(bundle_copy):
    from edge_ecg.runtime.bundle import load_bundle

    text = (bundle_copy / "manifest.json").read_text()
    for cut in (0, 1, len(text) // 3, len(text) - 2):
        _set_manifest(bundle_copy, text[:cut])
        with pytest.raises(BundleError, match="manifest.json"):
            load_bundle(bundle_copy)


def test_truncated_model_file_is_refused(bundle_copy):
    """Cut model, stale manifest: size check. Cut model with a matching manifest (a broken
    export): the backend refuses to load it."""
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.bundle import load_bundle, write_manifest

    doc = _doc(bundle_copy)
    model = bundle_copy / doc["variants"][doc["default_variant"]]["file"]
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="truncated or replaced"):
        load_bundle(bundle_copy)
    (bundle_copy / "manifest.json").unlink()
    write_manifest(bundle_copy, {k: v for k, v in doc.items()
                                 if k not in ("files", "format", "format_version")})
    with pytest.raises(BundleError, match="cannot load"):
        open_backend(bundle_copy)


def test_manifest_of_wrong_kind_is_refused(bundle_copy):
    from edge_ecg.runtime.bundle import load_bundle

    good = _doc(bundle_copy)
    cases = {
        "a list": [good],
        "a string": "bundle",
        "format": dict(good, format="evil-bundle"),
        "format_version": dict(good, format_version=99),
        "files": dict(good, files={}),
        "tasks": dict(good, tasks=[]),
        "default variant": dict(good, default_variant="nope"),
        "unknown fields": dict(good, evil=1),
    }
    for doc in cases.values():
        _set_manifest(bundle_copy, json.dumps(doc))
        with pytest.raises(BundleError):
            load_bundle(bundle_copy)
    _set_manifest(bundle_copy, "\xff\xfe")
    (bundle_copy / "manifest.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(BundleError):
        load_bundle(bundle_copy)


MANIFEST_BUGS = {
    # name: (mutation of the valid manifest document, what escapes today)
    "task_not_an_object": (lambda d: d.__setitem__("tasks", [1]), "TypeError"),
    "default_variant_a_list": (lambda d: d.__setitem__("default_variant", []), "TypeError"),
    "file_entry_not_an_object": (lambda d: d["files"].__setitem__(next(iter(d["files"])), 5),
                                 "AttributeError"),
    "file_path_with_nul": (lambda d: d["files"].__setitem__("a\x00b", {"sha256": "0",
                                                                        "bytes": 1}),
                           "ValueError"),
    "variants_a_string": (lambda d: d.__setitem__("variants", "x") or
                          d.__setitem__("default_variant", "x"), "AttributeError"),
}


@pytest.mark.parametrize("case", sorted(MANIFEST_BUGS))
def test_manifest_with_wrong_json_types_is_refused_with_bundle_error(bundle_copy, case):
    from edge_ecg.runtime.bundle import load_bundle

    doc = _doc(bundle_copy)
    MANIFEST_BUGS[case][0](doc)
    _set_manifest(bundle_copy, doc)
    with pytest.raises(BundleError):
        load_bundle(bundle_copy)


def test_deeply_nested_manifest_is_refused(bundle_copy):
    from edge_ecg.runtime.bundle import load_bundle

    _set_manifest(bundle_copy, "[" * 200_000)
    with pytest.raises(BundleError):
        load_bundle(bundle_copy)


def test_variant_with_unknown_key_is_refused_with_bundle_error(bundle_copy):
    from edge_ecg.runtime.backends import open_backend

    doc = _doc(bundle_copy)
    doc["variants"][doc["default_variant"]]["evil"] = 1
    _set_manifest(bundle_copy, doc)
    with pytest.raises(BundleError):
        open_backend(bundle_copy, manifest=None)


def test_bundle_with_a_bad_signal_contract_stops_the_runtime_with_its_error(bundle_copy):
    """A bundle whose signal contract has an unknown field: the runtime refuses to stream
    with an EdgeECGError (never predicts with a guessed contract)."""
    from edge_ecg.errors import EdgeECGError
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.bundle import write_manifest
    from edge_ecg.runtime.stream_processor import StreamProcessor

    doc = _doc(bundle_copy)
    doc["signal"] = dict(doc["signal"], evil=1)
    (bundle_copy / "manifest.json").unlink()
    write_manifest(bundle_copy, {k: v for k, v in doc.items()
                                 if k not in ("files", "format", "format_version")})
    with pytest.raises(EdgeECGError, match="evil"):
        StreamProcessor(open_backend(bundle_copy))


# --- profiles -----------------------------------------------------------------------------
def _profile(tmp_path, text: str) -> Path:
    p = tmp_path / "p.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("old,new,match", [
    ("threads = 1 ", "threads = true ", "runtime.threads"),
    ("threads = 1 ", "threads = 400 ", "runtime.threads"),
    ("hop_s = 1.0", "hop_s = 0", "stream.hop_s"),
    ("hop_s = 1.0", "hop_s = nan", "stream.hop_s"),
    ("hop_s = 1.0", "hop_s = inf", "stream.hop_s"),
    ("hop_s = 1.0", "hop_s = 20.0", "stream.hop_s"),
    ("cores = 2", "cores = -2", "device.cores"),
    ("[serial]", "[seriall]", "seriall"),
    ('arch = "x86_64"', 'arch = ["x86_64"]', "device.arch"),
    ('arch = "x86_64"', 'arch = "x86_64"\narch2 = 1', "device.arch2"),
    ('name = "local"', '', "name"),
    ('onnxruntime = ">=1.17"', 'onnxruntime = "latest please"', "known_good.onnxruntime"),
    ("cpu_affinity = [1]", "cpu_affinity = [7]", "runtime.cpu_affinity"),
    ("cpu_affinity = [1]", "cpu_affinity = [[1]]", "runtime.cpu_affinity"),
    ("[budget]", "[budget.nested]", "budget"),
    ("latency_p90_ms = 100.0", "latency_p90_ms = 1979-05-27T07:32:00Z", "latency_p90_ms"),
])
def test_malformed_profile_names_the_key(tmp_path, old, new, match):
    from profiles.profile import read_profile

    text = LOCAL.read_text()
    assert old in text
    with pytest.raises(ProfileError, match=match.replace(".", r"\.")):
        read_profile(_profile(tmp_path, text.replace(old, new, 1)))


def test_profile_that_is_not_toml_or_not_text(tmp_path):
    from profiles.profile import load_profile, read_profile

    for data in (b"", b"\x00\x01\x02", b"\xff\xfe\xfd", b"name = \"x\n", b"[[[", b"= = ="):
        p = tmp_path / "x.toml"
        p.write_bytes(data)
        with pytest.raises(ProfileError):
            read_profile(p)
    with pytest.raises(ProfileError):
        load_profile(str(tmp_path))              # a directory
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile("../../etc/passwd-like-name")


def test_deeply_nested_profile_is_refused(tmp_path):
    from profiles.profile import read_profile

    with pytest.raises(ProfileError):
        read_profile(_profile(tmp_path, "a = " + "[" * 100_000))


def test_profile_with_huge_integer_for_a_number_is_refused(tmp_path):
    from profiles.profile import read_profile

    text = LOCAL.read_text().replace("hop_s = 1.0", "hop_s = " + "9" * 400)
    with pytest.raises(ProfileError, match="stream.hop_s"):
        read_profile(_profile(tmp_path, text))


# --- the CLI stops with the message, exit 1, no traceback ---------------------------------
def test_cli_stream_refuses_tampered_bundle_and_bad_profile(bundle_copy, rel_bundle, tmp_path,
                                                            capsys):
    from edge_ecg.cli import main

    doc = _doc(bundle_copy)
    model = bundle_copy / doc["variants"][doc["default_variant"]]["file"]
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01
    model.write_bytes(bytes(data))
    out = tmp_path / "ev.jsonl"
    base = ["stream", "--source", "synth:sinus_rhythm?seconds=12", "--speed", "max",
            "--output", f"jsonl:{out}"]
    assert main([*base, "--bundle", str(bundle_copy)]) == 1
    err = capsys.readouterr().err
    assert "sha256" in err and "Traceback" not in err
    assert not out.exists() or "prediction" not in out.read_text()
    bad = _profile(tmp_path, LOCAL.read_text().replace("threads = 1 ", "threads = 0 "))
    assert main([*base, "--bundle", str(rel_bundle), "--profile", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "runtime.threads" in err and "Traceback" not in err
