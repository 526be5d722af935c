"""Profiler fixtures: a real bundle with an onnxruntime and an OpenVINO variant.

The ONNX graph is the runtime area's fixture (tests/runtime/conftest.py: real ops computing
checkable functions of the seven contract inputs), loaded from its file rather than copied;
a dynamic-int8 ONNX and an OpenVINO IR of the same graph are added, so `--compare` has
several variants and two backends.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _runtime_fixture_module():
    spec = importlib.util.spec_from_file_location(
        "runtime_fixture_bundle", REPO / "tests" / "runtime" / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build_two_backend_bundle(out: Path) -> Path:
    """The runtime fixture bundle plus `onnx-int8` (dynamic int8) and `openvino-fp32` variants."""
    import openvino as ov

    from edge_ecg.runtime.bundle import MANIFEST, write_manifest

    _runtime_fixture_module().build_fixture_bundle(out)
    (out / "openvino").mkdir()
    ov.save_model(ov.convert_model(str(out / "model.onnx")), str(out / "openvino" / "model.xml"),
                  compress_to_fp16=False)
    # A second onnxruntime variant: dynamic int8 of the same graph (its MatMuls quantised).
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(str(out / "model.onnx"), str(out / "model_int8.onnx"),
                     weight_type=QuantType.QInt8)
    doc = json.loads((out / MANIFEST).read_text())
    doc["variants"]["onnx-int8"] = {
        "name": "onnx-int8", "file": "model_int8.onnx", "backend": "onnxruntime",
        "precision": "int8", "routed": False}
    for k in ("files", "format", "format_version"):
        doc.pop(k)
    doc["variants"]["openvino-fp32"] = {
        "name": "openvino-fp32", "file": "openvino/model.xml", "backend": "openvino",
        "precision": "fp32", "routed": False, "extra_files": ["openvino/model.bin"]}
    (out / MANIFEST).unlink()
    write_manifest(out, doc)
    return out


@pytest.fixture(scope="session")
def profiler_bundle(tmp_path_factory) -> Path:
    return build_two_backend_bundle(tmp_path_factory.mktemp("profiler") / "bundle")
