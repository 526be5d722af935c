"""What `edge-ecg export` is asked for (`ExportRequest`: the CLI's options, the stage's
defaults) and the check that refuses a request the stage cannot carry out, before anything
is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge_ecg.errors import BundleError
from export.errors import ExportError
from export.int8_scope import (
    BEAT_EXPERTS_INT8,
    FP32_MODULES,
    INT8_CHAINS,
    ORT_OPTIMIZED,
    TRIM_SLOTS,
    WEIGHT_ONLY_MODULES,
)
from export.quantize import MIN_MACS
from export.routing import ROUTE_HEADS, ROUTE_SEARCH

FORMATS = ("onnx", "openvino")
VARIANTS = ("onnx-fp32", "onnx-fp32-routed", "onnx-int8-routed", "openvino-fp32-routed",
            "openvino-int8-routed")
# Made only when `--variants` names them. OpenVINO int8 (NNCF) on the bundled checkpoint, held-
# out fold: potassium F1 -0.0100 (at the 0.01 tolerance; -0.019 and age MAE +4.9 % before the
# graph forms) and beat macro F1 +0.10 (a move that large either way says its beat path
# computes something else), 3.7 ms at batch 1 during export against 1.7 ms for ONNX int8,
# and 158 MB peak RSS against 72 MB (bench/export_variants.py): not offered by default.
OPT_IN_VARIANTS = ("openvino-int8-routed",)


@dataclass(frozen=True)
class ExportRequest:
    """One export: the checkpoint, where the bundle goes, and every choice the stage makes."""

    checkpoint: Path
    out: Path
    calib: str = "synth:64"
    tasks: tuple[str, ...] = ()          # () = every task of the checkpoint
    quantize: str = "int8"               # int8 | none
    formats: tuple[str, ...] = FORMATS
    variants: tuple[str, ...] = ()       # () = every variant made; else only these in the bundle
    keep_mass: float = 0.99
    route_search: tuple[float, ...] = ROUTE_SEARCH   # per-task keep masses tried first
    route_heads: bool = ROUTE_HEADS      # a per-beat head reads its own experts only
    tolerance: float = 0.01
    allow_metric_drop: bool = False
    eval_spec: str = ""                  # data for metrics; "" = held-out half of the calib data
    seed: int = 0
    progress: bool = True
    overwrite: bool = False
    fp32_modules: tuple[str, ...] = FP32_MODULES
    weight_only_modules: tuple[str, ...] = WEIGHT_ONLY_MODULES
    min_macs: int = MIN_MACS              # smaller Conv/MatMul/Gemm nodes stay fp32 in int8
    int8_chains: bool = INT8_CHAINS       # INT8_CHAIN_EXPERTS' ReLU, Add, pools int8 too
    beat_experts_int8: bool = BEAT_EXPERTS_INT8   # a per-beat task's experts int8 too
    ort_optimized: bool = ORT_OPTIMIZED   # ship onnxruntime's optimised int8 graph
    trim_slots: bool = TRIM_SLOTS         # onnxruntime routed graphs: beat slots in use only
    command: str = ""                    # the command line that asked for this export (report)
    sign_key: Path | None = None         # Ed25519 private key: sign the manifest (manifest.sig)


def check_request(req: ExportRequest) -> None:
    """Refuse a request the stage cannot carry out, before anything is loaded."""
    out = Path(req.out)
    if out.exists() and any(out.iterdir()) and not req.overwrite:
        raise ExportError(f"output folder {out} exists and is not empty; pass --overwrite or "
                          "another --out")
    bad = [f for f in req.formats if f not in FORMATS]
    if bad or not req.formats:
        raise ExportError(f"--formats takes a list of {FORMATS}, got {list(req.formats)}")
    if req.quantize not in ("int8", "none"):
        raise ExportError(f"--quantize takes int8 or none, got {req.quantize!r}")
    unknown = [v for v in req.variants if v not in VARIANTS]
    if unknown:
        raise ExportError(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    if req.sign_key is not None:
        # a missing or world-readable key fails now, not after minutes of export
        from edge_ecg.runtime.signing import load_private_key

        try:
            load_private_key(req.sign_key)
        except BundleError as exc:
            raise ExportError(f"--sign-key: {exc}") from exc
