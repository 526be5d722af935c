"""`edge-ecg bundle verify|info BUNDLE`: check a bundle's hashes and manifest, or summarise it.

Uses `edge_ecg.runtime.bundle.load_bundle`, the same check the runtime makes before loading a model.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_ecg import DISCLAIMER


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    v = sub.add_parser("verify", help="check every file's size and sha256 against the manifest")
    v.add_argument("bundle", type=Path)
    i = sub.add_parser("info", help="print the bundle's tasks, variants, routing and figures")
    i.add_argument("bundle", type=Path)


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def summary_lines(bundle: Path, m) -> list[str]:
    """A short human summary of a verified manifest."""
    lines = [(f"bundle {bundle}: model {m.model_version}, format {m.format} v{m.format_version}, "
             f"training data: {m.training_data}")]
    sig = m.signal
    lines.append(f"  signal: {sig.get('fs_hz')} Hz, {len(sig.get('leads', []))} leads, "
                 f"window {sig.get('window_s')} s, hop {sig.get('hop_s')} s, "
                 f"filter {sig.get('filter')}, normalisation {sig.get('normalisation')}")
    for t in m.tasks:
        what = t.get("unit") or ", ".join(t.get("labels", [])[:4]) + (
            " ..." if len(t.get("labels", [])) > 4 else "")
        lines.append(f"  task {t['name']} ({t['kind']}, output {t['output']!r}): {what}")
    paths = m.routing.get("paths", {})
    if paths:
        lines.append("  routed experts: " + "; ".join(
            f"{p} {d['kept']} of {d['total']}" for p, d in paths.items()))
    cost = m.routing.get("cost", {})
    if cost:
        lines.append("  params / FLOPs: all experts {:,} / {:,}, routed {:,} / {:,}".format(
            cost["all_experts"]["params"], cost["all_experts"]["flops"],
            cost["routed"]["params"], cost["routed"]["flops"]))
    for name, v in sorted(m.variants.items()):
        size = sum(m.files[f]["bytes"] for f in (v["file"], *v.get("extra_files", ())))
        mark = " (default)" if name == m.default_variant else ""
        par = m.parity.get(name, {})
        regs = [d["max_abs_diff"] for d in par.get("tasks", {}).values() if "max_abs_diff" in d]
        agree = [d["class_agreement"] for d in par.get("tasks", {}).values()
                 if "class_agreement" in d]
        fig = []
        if regs:
            fig.append(f"max regression diff {max(regs):.3g}")
        if agree:
            fig.append(f"min class agreement {min(agree):.3f}")
        drops = metric_change(m, name)
        if drops:
            fig.append("metric change " + ", ".join(f"{t} {d:+.4f}" for t, d in drops.items()))
        lines.append(f"  variant {name}{mark}: {v['backend']} {v['precision']}"
                     f"{' routed' if v['routed'] else ''}, {_size(size)}"
                     + (f", {', '.join(fig)}" if fig else ""))
    return lines


def metric_change(m, variant: str) -> dict[str, float]:
    """Per task, the primary metric of `variant` minus that of torch fp32 with all experts (as
    recorded at export; MAE in task units, F1/accuracy as fractions)."""
    ref, got = m.metrics.get("torch-fp32", {}), m.metrics.get(variant, {})
    out = {}
    for t in m.tasks:
        a = ref.get(t["name"], {}).get(t.get("metric", ""))
        b = got.get(t["name"], {}).get(t.get("metric", ""))
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            out[f"{t['name']} {t['metric']}"] = float(b) - float(a)
    return out


def run(args: argparse.Namespace) -> int:
    from edge_ecg.runtime.bundle import load_bundle

    m = load_bundle(args.bundle)
    if args.action == "verify":
        total = sum(f["bytes"] for f in m.files.values())
        print(f"bundle {args.bundle}: OK ({len(m.files)} files, {_size(total)}, sha256 verified; "
              f"variants: {', '.join(sorted(m.variants))}; default {m.default_variant})")
    else:
        print("\n".join(summary_lines(args.bundle, m)))
        print(DISCLAIMER)
    return 0
