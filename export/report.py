"""The bundle's human side: REPORT.md and a PNG chart of size, latency and metric change.

Both carry the synthetic-data disclaimer; the chart uses matplotlib's Agg backend (no display).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_ecg import DISCLAIMER
from edge_ecg.data.tasks import TaskSet
from export.routing import select_experts


def write_chart(path: Path, built: list, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [b.name for b in built]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    ax.bar(names, [b.bytes / 1e6 for b in built], color="tab:blue")
    ax.set_ylabel("file size (MB)")
    ax.set_title("size")
    ax = axes[1]
    lat_names = list(summary["torch_latency_ms"]) + names
    lat = list(summary["torch_latency_ms"].values()) + [b.latency_ms for b in built]
    colors = ["tab:gray"] * len(summary["torch_latency_ms"]) + ["tab:orange"] * len(built)
    ax.bar(lat_names, lat, color=colors)
    ax.set_ylabel("latency, median ms (batch 1, 1 thread)")
    ax.set_title("latency")
    ax = axes[2]
    drops = summary["drops"]
    variants = [v for v in drops]
    task_names = sorted({t for d in drops.values() for t in d})
    width = 0.8 / max(len(task_names), 1)
    xs = np.arange(len(variants))
    for i, t in enumerate(task_names):
        vals = [100 * drops[v].get(t, np.nan) for v in variants]
        ax.bar(xs + i * width - 0.4 + width / 2, vals, width, label=t)
    ax.axhline(100 * summary["tolerance"], color="red", linestyle="--", linewidth=1,
               label="tolerance")
    ax.set_xticks(xs, variants)
    ax.set_ylabel("metric drop vs torch fp32 (%; >0 worse)")
    ax.set_title("accuracy")
    ax.legend(fontsize=7)
    for a in axes:
        a.tick_params(axis="x", rotation=30, labelsize=8)
        for label in a.get_xticklabels():
            label.set_horizontalalignment("right")
    fig.suptitle(f"{summary['model_version']}: {DISCLAIMER}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _fmt(x, nd=4) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{nd}g}"
    return str(x)


def _heads(heads: dict) -> str:
    return ", ".join(f"{t} {'+'.join(map(str, e))}" for t, e in heads.items()) or "every head all"


def write_report(path: Path, built: list, summary: dict, tasks: TaskSet) -> None:
    r = summary["routing"]
    cost = summary["cost"]
    lines = [
        f"# Export report: {summary['model_version']}",
        "",
        f"> {DISCLAIMER}",
        "",
        f"- checkpoint: `{summary['checkpoint']}`",
        *([f"- command: `{summary['command']}`"] if summary.get("command") else []),
        f"- tasks: {', '.join(tasks.names)}",
        (f"- calibration data: `{summary['calib']}` ({summary['n_calib']} windows); "
        f"metrics on {summary['eval']} ({summary['n_eval']} windows)"),
        (f"- ONNX opset {summary['opset']}, one file per model; default variant "
        f"`{summary['default_variant']}`"),
        f"- LoRA merge: {'merged, max abs diff ' + _fmt(summary['merge']['max_abs_diff']) if summary['merge']['merged'] else 'no adapters in the checkpoint'}",
        "",
        "## Routing",
        "",
        (f"Each task keeps the experts carrying >= {r['keep_mass']:.0%} of its own gate row on "
         "the calibration windows; a path keeps their union." if r.get("keep_mass_per_task") else
         f"Experts kept per path carry >= {r['keep_mass']:.0%} of the gate mass of the chosen "
         "tasks on the calibration windows."),
        *([("Sharper routings tried (per-task keep mass: experts kept, per-beat heads' "
            "experts, worst metric drop in torch): " + "; ".join(
                f"{s['keep_mass_per_task']:g}: {s['experts_kept']}, "
                f"{_heads(s.get('heads', {}))}, {s['worst_drop']:+.4f}" for s in r["search"]))]
          if r.get("search") else []),
        *([("Per-beat heads read only their own experts (the others compute the beats the "
            "window tasks pool): " + _heads({t: h["kept_names"] or h["kept"]
                                             for t, h in r["heads"].items()}) + ".")]
          if r.get("heads") else []),
        "",
        "| path | kept / total | kept experts | mass kept | usage per expert |",
        "|---|---|---|---|---|",
    ]
    for p, d in r["paths"].items():
        lines.append(f"| {p} | {len(d['kept'])} / {d['total']} | {d['kept']} | "
                     f"{d['mass_kept']:.4f} | {', '.join(f'{u:.3f}' for u in d['usage'])} |")
    if any(d.get("usage_per_task") for d in r["paths"].values()) and len(tasks) > 1:
        # A deployer choosing `--tasks` wants to see which experts each task leans on: the
        # routed graph keeps the union of what the chosen tasks use.
        lines += ["", ("Gate mass per task (mean weight per expert; each task alone would keep "
                       f"the experts carrying {r['keep_mass']:.0%} of its row):"), "",
                  "| path | task | usage per expert | alone keeps |",
                  "|---|---|---|---|"]
        for p, d in r["paths"].items():
            for t, row in d.get("usage_per_task", {}).items():
                names = d.get("experts") or [str(i) for i in range(len(row))]
                if sum(row) <= 0:       # a per-beat task does not read this path
                    alone_s = "none (the task does not read this path)"
                else:
                    alone = select_experts({p: np.asarray(row)}, r["keep_mass"])[p]
                    alone_s = ", ".join(names[i] for i in alone)
                lines.append(f"| {p} | {t} | {', '.join(f'{u:.3f}' for u in row)} | "
                             f"{alone_s} |")
    if all(len(d["kept"]) == d["total"] for d in r["paths"].values()):
        lines += ["", ("Every expert carries gate mass for these tasks: the routed graph keeps "
                      "them all" + (", the per-beat heads reading their own." if r.get("heads")
                                    else ": it is the whole graph.")
                      + " A deployment that names fewer tasks (`--tasks`) or a lower "
                      "`--keep-mass` drops experts.")]
    lines += [
        "",
        "| model | parameters | FLOPs per window |",
        "|---|---|---|",
        f"| all experts | {cost['all_experts']['params']:,} | {cost['all_experts']['flops']:,} |",
        f"| routed | {cost['routed']['params']:,} | {cost['routed']['flops']:,} |",
        "",
        "## Variants",
        "",
        ("Latency: median of 20 runs at batch 1 on one thread, measured during export. Parity "
        "against torch (the routed torch model for routed variants): max abs difference of "
        "regressions in task units, agreement of class decisions. OpenVINO validated with "
        "INFERENCE_PRECISION_HINT=f32."),
        "",
    ]
    head = "| variant | backend | precision | routed | size (bytes) | latency ms |"
    for t in tasks:
        head += f" {t.name} {'max abs diff (' + t.unit + ')' if t.kind == 'regression' else 'agreement'} |"
    lines += [head, "|" + "---|" * (6 + len(tasks))]
    for name, ms in summary["torch_latency_ms"].items():
        lines.append(f"| {name} | torch | fp32 | {'routed' in name} | - | {ms:.3f} |"
                     + " reference |" * len(tasks))
    for b in built:
        row = (f"| {b.name} | {b.backend} | {b.precision} | {b.routed} | {b.bytes:,} | "
               f"{b.latency_ms:.3f} |")
        for t in tasks:
            p = b.parity["tasks"][t.name]
            row += f" {_fmt(p.get('max_abs_diff', p.get('class_agreement')))} |"
        lines.append(row)
    lines += ["", "## Task metrics", "",
              ("Metric change is against torch fp32 with all experts: relative for MAE, absolute "
              f"for F1 and accuracy; tolerance {summary['tolerance']:g}."), ""]
    head = "| model |" + "".join(f" {t.name} {t.metric} |" for t in tasks) + " worst drop |"
    lines += [head, "|" + "---|" * (len(tasks) + 2)]
    rows = [("torch-fp32", summary["reference_metrics"], {}),
            ("torch-fp32-routed", summary["routed_metrics"], summary["drops"]["torch-fp32-routed"])]
    rows += [(b.name, b.metrics, summary["drops"].get(b.name, {})) for b in built]
    for name, m, d in rows:
        row = f"| {name} |" + "".join(f" {_fmt(m.get(t.name, {}).get(t.metric))} |" for t in tasks)
        row += f" {_fmt(max(d.values()) if d else 0.0)} |"
        lines.append(row)
    if summary["over_tolerance"]:
        lines += ["", (f"**Over tolerance (exported with --allow-metric-drop):** "
                      f"{summary['over_tolerance']}")]
    if summary.get("timings_s"):
        lines += ["", "Export stage wall time (s): " + ", ".join(
            f"{k} {v:.1f}" for k, v in summary["timings_s"].items())]
    lines += ["", "![size, latency and metric change per variant](chart.png)", "",
              f"_{DISCLAIMER}_", ""]
    path.write_text("\n".join(lines))
