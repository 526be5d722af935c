"""Bundles: verified before use, refused with BundleError when bad; both backends agree."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from edge_ecg.errors import BundleError
from edge_ecg.runtime.backends import open_backend
from edge_ecg.signal.contract import SignalContract, prepare_inputs, stack_inputs


def _inputs(n=3):
    c = SignalContract()
    rng = np.random.default_rng(0)
    items = [prepare_inputs(rng.normal(0, 0.3, (c.window_len, 12)).astype(np.float32),
                            c.leads, np.arange(200, c.window_len, 400 + 20 * i), c)
             for i in range(n)]
    return stack_inputs(items)


def test_fixture_bundle_runs_and_computes_its_numbers(fixture_bundle):
    be = open_backend(fixture_bundle)
    inp = _inputs()
    out = be.run(inp)
    rr = (inp["rr_ms"] * inp["rr_mask"]).sum(1) / inp["rr_mask"].sum(1)
    np.testing.assert_allclose(out["rr_interval"], rr, rtol=1e-5)
    assert out["arrhythmia"].shape == (3, 4)           # the rhythm classes of tasks.toml
    np.testing.assert_allclose(out["arrhythmia"].sum(1), 1.0, rtol=1e-5)
    assert be.variant.name == "onnx-fp32" and be.name == "onnxruntime"
    be.close()


def test_openvino_backend_matches_onnxruntime(fixture_bundle, tmp_path):
    from edge_ecg.runtime.bundle import load_bundle, write_manifest

    b = tmp_path / "ov"
    shutil.copytree(fixture_bundle, b)
    m = load_bundle(b)
    fields = {k: v for k, v in json.loads((b / "manifest.json").read_text()).items()
              if k not in ("files", "format", "format_version")}
    fields["variants"] = dict(m.variants, **{"ov-fp32": {
        "name": "ov-fp32", "file": "model.onnx", "backend": "openvino", "precision": "fp32",
        "routed": False}})
    (b / "manifest.json").unlink()
    write_manifest(b, fields)
    inp = _inputs()
    ref = open_backend(b).run(inp)
    ov = open_backend(b, variant="ov-fp32", threads=1)
    assert ov.name == "openvino"
    got = ov.run(inp)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_tampered_bundle_is_refused(fixture_bundle, tmp_path):
    b = tmp_path / "bad"
    shutil.copytree(fixture_bundle, b)
    data = bytearray((b / "model.onnx").read_bytes())
    data[-10] ^= 0xFF                                   # same size, one byte changed
    (b / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256"):
        open_backend(b)


def test_missing_or_unknown_bundle_is_refused(fixture_bundle, tmp_path):
    with pytest.raises(BundleError, match="not a directory"):
        open_backend(tmp_path / "nowhere")
    b = tmp_path / "nomani"
    shutil.copytree(fixture_bundle, b)
    (b / "manifest.json").unlink()
    with pytest.raises(BundleError, match="manifest.json"):
        open_backend(b)
    with pytest.raises(BundleError, match="no variant"):
        open_backend(fixture_bundle, variant="nope")


def test_cli_refuses_bad_bundle_with_message(fixture_bundle, tmp_path):
    b = tmp_path / "cli_bad"
    shutil.copytree(fixture_bundle, b)
    (b / "model.onnx").write_bytes(b"not a model")
    res = subprocess.run([sys.executable, "-m", "edge_ecg", "stream", "--source",
                          "synth:sinus_rhythm?seconds=12", "--bundle", str(b), "--speed", "max"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "model.onnx" in res.stderr and "Traceback" not in res.stderr
    assert res.stdout == ""
