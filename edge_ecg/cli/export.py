"""`edge-ecg export`: checkpoint -> merged, routed, int8 ONNX/OpenVINO bundle with a report.

Thin layer over `export.stage.export_bundle`; torch is imported only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_ecg import DISCLAIMER


def _list(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _command_line(args: argparse.Namespace) -> str:
    """The export command these options spell (for the report; defaults included)."""
    import shlex

    parts = ["edge-ecg", "export", "--checkpoint", str(args.checkpoint), "--out", str(args.out)]
    if args.tasks:
        parts += ["--tasks", ",".join(args.tasks)]
    parts += ["--calib", args.calib, "--quantize", args.quantize,
              "--formats", ",".join(args.formats)]
    if args.eval_spec:
        parts += ["--eval", args.eval_spec]
    if args.variants:
        parts += ["--variants", ",".join(args.variants)]
    parts += ["--keep-mass", f"{args.keep_mass:g}", "--tolerance", f"{args.tolerance:g}"]
    if args.route_search is not None:
        parts += ["--route-search", args.route_search]
    if args.min_macs is not None:
        parts += ["--min-macs", str(args.min_macs)]
    for flag, value in (("int8-chains", args.int8_chains), ("ort-optimized", args.ort_optimized),
                        ("route-heads", args.route_heads),
                        ("beat-experts-int8", args.beat_experts_int8)):
        if value is not None:
            parts.append(f"--{flag}" if value else f"--no-{flag}")
    if args.allow_metric_drop:
        parts.append("--allow-metric-drop")
    if args.seed:
        parts += ["--seed", str(args.seed)]
    return " ".join(shlex.quote(p) for p in parts)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, type=Path,
                        help="checkpoint folder (model.safetensors + config.json)")
    parser.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    parser.add_argument("--tasks", default="",
                        help="comma-separated tasks the deployment needs; empty = all")
    parser.add_argument("--calib", default="synth:64",
                        help="calibration data spec (load_dataset): synth:N, a jsonl, mitdb:PATH")
    parser.add_argument("--eval", dest="eval_spec", default="",
                        help="data for parity, metrics, the route search and the acceptance "
                             "gate; empty = the held-out half of --calib. Choices are taken on "
                             "it, so name validation patients, never a test fold: the bundled "
                             "model uses recipe:validation?subjects=CHECKPOINT")
    parser.add_argument("--quantize", choices=("int8", "none"), default="int8")
    parser.add_argument("--formats", default="onnx,openvino", help="comma-separated")
    parser.add_argument("--variants", default="",
                        help="variants to keep in the bundle; empty = every one but "
                             "openvino-int8-routed (made only when named: over the metric "
                             "tolerance on the bundled model), e.g. "
                             "onnx-fp32,onnx-int8-routed,openvino-fp32-routed")
    parser.add_argument("--keep-mass", type=float, default=0.99,
                        help="gate mass the kept experts must carry, per path")
    parser.add_argument("--route-search", default=None, metavar="MASSES",
                        help="per-task keep masses tried before --keep-mass, sharpest first "
                             "(each task keeps the experts carrying that much of its own gate "
                             "row; the first whose measured metric drop is within half the "
                             "tolerance is taken); default 0.8,0.9,0.95, 'none' to skip")
    parser.add_argument("--min-macs", type=int, default=None,
                        help="int8: Conv/MatMul/Gemm nodes under this many multiply-accumulates "
                             "per window stay fp32 (int8-stored weights)")
    parser.add_argument("--int8-chains", action=argparse.BooleanOptionalAction, default=None,
                        help="int8: the convolutional experts' ReLUs, residual Adds and "
                             "pooling int8 as well, so their convolutions chain in int8")
    parser.add_argument("--route-heads", action=argparse.BooleanOptionalAction, default=None,
                        help="routed graphs: a per-beat head reads only the experts carrying "
                             "its own gate mass (the other tasks' experts then compute the "
                             "pooled beats only)")
    parser.add_argument("--beat-experts-int8", action=argparse.BooleanOptionalAction,
                        default=None,
                        help="int8: the morphology experts a per-beat task reads quantized "
                             "too (the default) or kept fp32 (--no-beat-experts-int8: the "
                             "bundled model's export, whose beat S F1 fell past the gate with "
                             "them int8)")
    parser.add_argument("--ort-optimized", action=argparse.BooleanOptionalAction, default=None,
                        help="int8: ship onnxruntime's optimised graph (QLinear kernels, fused "
                             "ops) instead of the QDQ file")
    parser.add_argument("--tolerance", type=float, default=0.01,
                        help="largest metric drop allowed (F1/accuracy absolute, MAE relative)")
    parser.add_argument("--allow-metric-drop", action="store_true",
                        help="write the bundle even when a metric drops beyond --tolerance")
    parser.add_argument("--seed", type=int, default=0, help="data and torch seed")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--sign-key", type=Path, default=None, metavar="KEY",
                        help="Ed25519 private key (`edge-ecg bundle keygen`): sign the manifest; "
                             "devices run only bundles signed by a key they trust")


def run(args: argparse.Namespace) -> int:
    from export.stage import ExportRequest, export_bundle

    args.tasks, args.formats = _list(args.tasks), _list(args.formats)
    args.variants = _list(args.variants)
    # options left unset keep the stage's defaults (export/stage.py says why each is what it is)
    extra = {k: v for k, v in (("min_macs", args.min_macs), ("int8_chains", args.int8_chains),
                               ("ort_optimized", args.ort_optimized),
                               ("route_heads", args.route_heads),
                               ("beat_experts_int8", args.beat_experts_int8)) if v is not None}
    if args.route_search is not None:
        text = args.route_search.strip().lower()
        extra["route_search"] = () if text in ("", "none") else tuple(
            float(m) for m in _list(text))
    req = ExportRequest(checkpoint=args.checkpoint, out=args.out, calib=args.calib,
                        tasks=args.tasks, quantize=args.quantize, formats=args.formats,
                        variants=args.variants, keep_mass=args.keep_mass,
                        tolerance=args.tolerance, allow_metric_drop=args.allow_metric_drop,
                        eval_spec=args.eval_spec, seed=args.seed, progress=not args.no_progress,
                        overwrite=args.overwrite, command=_command_line(args),
                        sign_key=args.sign_key, **extra)
    m = export_bundle(req)    # verified after install: files, and the signature when signed
    from edge_ecg.cli.bundle import summary_lines

    print("\n".join(summary_lines(args.out, m)))
    if args.sign_key is None:
        print(f"UNSIGNED: devices refuse it until it is signed: edge-ecg bundle sign {args.out} "
              "--key KEY")
    print(f"report: {args.out / 'REPORT.md'}")
    print(DISCLAIMER)
    return 0
