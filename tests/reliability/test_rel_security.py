"""Untrusted input stays data: bundles, checkpoints, profiles, the serial port.

Nothing read from a device, a bundle or a profile is executed or unpickled; bundle paths cannot
leave the bundle directory; the serial port is opened with explicit settings.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from edge_ecg.errors import BundleError, CheckpointError, ProfileError

REPO = Path(__file__).resolve().parents[2]
ON_DEVICE = [REPO / "edge_ecg" / "signal", REPO / "edge_ecg" / "runtime", REPO / "firmware_bridge",
             REPO / "profiles", REPO / "edge_ecg" / "cli", REPO / "export" / "manifest.py"]


class _Payload:
    """Unpickling this runs `touch MARKER`: the test fails if the marker appears."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bundle_copy(rel_bundle: Path, tmp_path: Path) -> tuple[Path, dict]:
    """A copy of the test bundle and its parsed manifest, for a test to tamper with."""
    b = tmp_path / "b"
    shutil.copytree(rel_bundle, b)
    return b, json.loads((b / "manifest.json").read_text())


def _save_manifest(b: Path, doc: dict) -> None:
    (b / "manifest.json").write_text(json.dumps(doc))


def _rewrite_manifest(bundle: Path) -> None:
    from edge_ecg.runtime.bundle import MANIFEST, write_manifest

    doc = json.loads((bundle / MANIFEST).read_text())
    (bundle / MANIFEST).unlink()
    write_manifest(bundle, {k: v for k, v in doc.items()
                            if k not in ("files", "format", "format_version")})


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_bundle_whose_model_is_a_pickle_is_refused_and_not_run(rel_bundle, tmp_path, backend):
    """The model file replaced by a code-carrying pickle, hashes rewritten to match: the
    runtime refuses it with BundleError and the pickle's code never runs."""
    from edge_ecg.runtime.backends import open_backend

    b, doc = _bundle_copy(rel_bundle, tmp_path)
    marker = tmp_path / "PWNED"
    variant = doc["variants"][doc["default_variant"]]
    (b / variant["file"]).write_bytes(pickle.dumps(_Payload(marker)))
    variant["backend"] = backend
    _save_manifest(b, doc)
    _rewrite_manifest(b)
    with pytest.raises(BundleError):
        open_backend(b)
    assert not marker.exists()


def test_checkpoint_with_code_carrying_pickle_is_refused(tmp_path):
    from edge_ecg.model.checkpoint import load_tensor_file

    marker = tmp_path / "PWNED"
    pt = tmp_path / "model.pt"
    pt.write_bytes(pickle.dumps({"w": _Payload(marker)}))
    with pytest.raises(CheckpointError, match="refused"):
        load_tensor_file(pt)
    assert not marker.exists()
    fake = tmp_path / "model.safetensors"
    fake.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointError):
        load_tensor_file(fake)
    assert not marker.exists()


def test_profile_with_odd_content_stays_data(tmp_path):
    from profiles.profile import read_profile

    marker = tmp_path / "PWNED"
    text = (REPO / "profiles" / "local.toml").read_text()
    code = f"__import__('os').system('touch {marker}')"
    text = text.replace('name = "local"', f'name = "{code}"')
    text = text.replace('os = "Debian GNU/Linux 12"', f'os = "$(touch {marker}); `touch {marker}`"')
    p = tmp_path / "odd.toml"
    p.write_text(text)
    prof = read_profile(p)
    assert prof.name == code and prof.device_os.startswith("$(touch")
    assert not marker.exists()
    for bad in ('backend = "onnxruntime; rm -rf /"', 'backend = "__import__(\'os\')"'):
        p.write_text(text.replace('backend = "onnxruntime"', bad))
        with pytest.raises(ProfileError, match="runtime.backend"):
            read_profile(p)


# --- no exec/unpickle in the code that runs on the device ----------------------------------
FORBIDDEN_CALLS = {("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"),
                   ("marshal", "load"), ("marshal", "loads"), ("shelve", "open"),
                   ("dill", "load"), ("dill", "loads"), ("cloudpickle", "load"),
                   ("yaml", "load"), ("yaml", "unsafe_load")}
FORBIDDEN_NAMES = {"eval", "exec", "compile", "__import__"}


def _py_files():
    for root in ON_DEVICE:
        yield from ([root] if root.is_file() else sorted(root.rglob("*.py")))


def _rel(path: Path) -> Path:
    try:
        return path.relative_to(REPO)
    except ValueError:
        return path


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f, where = node.func, f"{_rel(path)}:{node.lineno}"
        if isinstance(f, ast.Name) and f.id in FORBIDDEN_NAMES:
            out.append(f"{where} calls {f.id}()")
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            if (f.value.id, f.attr) in FORBIDDEN_CALLS:
                out.append(f"{where} calls {f.value.id}.{f.attr}()")
            kw = {k.arg: k.value for k in node.keywords}
            if f.value.id in ("np", "numpy") and f.attr == "load":
                ap = kw.get("allow_pickle")
                if isinstance(ap, ast.Constant) and ap.value is True:
                    out.append(f"{where} calls np.load(allow_pickle=True)")
            if f.value.id == "torch" and f.attr == "load":
                wo = kw.get("weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    out.append(f"{where} calls torch.load without weights_only=True")
    return out


def test_on_device_packages_never_unpickle_or_exec():
    files = list(_py_files())
    assert len(files) > 20                      # the scan really covers the packages
    found = [v for p in files for v in _violations(p)]
    assert not found, "\n".join(found)


def test_scanner_catches_what_it_forbids(tmp_path):
    """The grep-style scan is not vacuous: it flags each forbidden form."""
    p = tmp_path / "bad.py"
    p.write_text("import pickle, numpy as np, torch\npickle.loads(b'')\neval('1')\n"
                 "np.load('x', allow_pickle=True)\ntorch.load('x')\nexec('1')\n")
    assert len(_violations(p)) == 5


def test_whole_project_torch_load_is_weights_only():
    files = [p for p in (REPO / "edge_ecg").rglob("*.py")] + list((REPO / "export").rglob("*.py"))
    bad = [v for p in files for v in _violations(p) if "torch.load" in v or "pickle" in v]
    assert not bad, "\n".join(bad)


# --- bundle paths cannot escape ---------------------------------------------------------
@pytest.mark.parametrize("rel", ["../../etc/passwd", "/etc/passwd", "sub/../../outside.onnx",
                                 "../" * 20 + "etc/hostname"])
def test_manifest_file_entry_cannot_escape(rel_bundle, tmp_path, rel):
    from edge_ecg.runtime.bundle import load_bundle

    b, doc = _bundle_copy(rel_bundle, tmp_path)
    (tmp_path / "outside.onnx").write_bytes(b"x")
    doc["files"][rel] = {"sha256": "0" * 64, "bytes": 1}
    _save_manifest(b, doc)
    with pytest.raises(BundleError, match="escapes"):
        load_bundle(b)


def test_variant_file_cannot_escape(rel_bundle, tmp_path):
    from edge_ecg.runtime.bundle import load_bundle

    b, doc = _bundle_copy(rel_bundle, tmp_path)
    doc["variants"][doc["default_variant"]]["file"] = "../outside.onnx"
    _save_manifest(b, doc)
    with pytest.raises(BundleError):
        load_bundle(b)


def test_symlinked_model_pointing_outside_is_refused(rel_bundle, tmp_path):
    """The model file is a symlink to a (valid, hash-matching) file outside the bundle."""
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.bundle import load_bundle

    b, doc = _bundle_copy(rel_bundle, tmp_path)
    model = doc["variants"][doc["default_variant"]]["file"]
    outside = tmp_path / "elsewhere" / "model.onnx"
    outside.parent.mkdir()
    shutil.move(b / model, outside)
    (b / model).symlink_to(outside)
    with pytest.raises(BundleError, match="escapes"):
        load_bundle(b)
    with pytest.raises(BundleError):
        open_backend(b)


def test_symlinked_subdirectory_pointing_outside_is_refused(rel_bundle, tmp_path):
    from edge_ecg.runtime.bundle import load_bundle

    b, doc = _bundle_copy(rel_bundle, tmp_path)
    (tmp_path / "ext").mkdir()
    (tmp_path / "ext" / "w.bin").write_bytes(b"abc")
    (b / "sub").symlink_to(tmp_path / "ext", target_is_directory=True)
    doc["files"]["sub/w.bin"] = {"sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                                 "bytes": 3}
    _save_manifest(b, doc)
    with pytest.raises(BundleError, match="escapes"):
        load_bundle(b)


def test_symlinked_manifest_pointing_outside_is_refused(rel_bundle, tmp_path):
    from edge_ecg.runtime.bundle import load_bundle

    b, _ = _bundle_copy(rel_bundle, tmp_path)
    out = tmp_path / "outside_manifest.json"
    shutil.move(b / "manifest.json", out)
    (b / "manifest.json").symlink_to(out)
    with pytest.raises(BundleError):
        load_bundle(b)


# --- the serial port is opened with explicit settings --------------------------------------
def test_serial_source_sets_port_settings_explicitly(monkeypatch):
    """Every setting that decides how bytes are framed on the wire is set by SerialSource,
    not left to pyserial's defaults, and has the value PROTOCOL.md specifies (8N1)."""
    import numpy as np
    import serial

    from firmware_bridge.emulator import VirtualMonitor
    from firmware_bridge.serial_source import SerialSource

    assigned: dict = {}
    ctor: dict = {}
    real = serial.Serial

    class Recording(real):
        def __init__(self, *args, **kwargs):
            ctor.update(kwargs, _args=args)
            super().__init__(*args, **kwargs)

        def __setattr__(self, name, value):
            if not name.startswith("_"):
                assigned[name] = value
            super().__setattr__(name, value)

    monkeypatch.setattr(serial, "Serial", Recording)
    x = np.zeros((500, 1))
    with VirtualMonitor(x, 500.0, ("II",), speed=5) as vm:
        src = SerialSource(vm.path, baud=460800, timeout_s=0.03)
        src.open()
        try:
            port = src._serial
            settings = {**assigned, **{k: v for k, v in ctor.items() if k != "_args"}}
            for name in ("baudrate", "bytesize", "parity", "stopbits", "timeout"):
                assert name in settings, f"SerialSource leaves {name} to pyserial's default"
            assert (port.baudrate, port.bytesize, port.parity, port.stopbits) == (
                460800, serial.EIGHTBITS, serial.PARITY_NONE, serial.STOPBITS_ONE)
            assert port.timeout == 0.03
            assert not port.xonxoff and not port.rtscts
        finally:
            src.close()


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("where", ["parent", "absolute"])
def test_onnx_external_data_outside_the_bundle_is_refused(rel_bundle, tmp_path, backend, where):
    """An initializer stored as ONNX external data whose location leaves the bundle (the
    file it names is not in the manifest, so no hash guards it): the backend refuses."""
    import onnx
    from onnx import numpy_helper
    from onnx.external_data_helper import set_external_data

    from edge_ecg.runtime.backends import open_backend

    b, doc = _bundle_copy(rel_bundle, tmp_path)
    variant = doc["variants"][doc["default_variant"]]
    if not variant["file"].endswith(".onnx"):
        pytest.skip("the default variant is not an ONNX file")
    model = onnx.load(str(b / variant["file"]))
    init = max(model.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
    arr = numpy_helper.to_array(init)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(arr.tobytes())
    loc = str(outside) if where == "absolute" else "../outside.bin"
    set_external_data(init, location=loc, offset=0, length=arr.nbytes)
    init.ClearField("raw_data")
    init.data_location = onnx.TensorProto.EXTERNAL
    onnx.save(model, str(b / variant["file"]))
    variant["backend"] = backend
    _save_manifest(b, doc)
    _rewrite_manifest(b)
    with pytest.raises(BundleError):
        open_backend(b)
