"""Profiler reports for people: a text table per run or side by side, and a latency plot.

The text always starts with the machine measured on and the proxy note, and ends with the
model disclaimer; the plot (matplotlib, Agg) shows the per-hop latency distribution of each
variant as a violin with its p50/p90/p99 marked, beside the per-stage p90 breakdown.
"""

from __future__ import annotations

from pathlib import Path

from edge_ecg import DISCLAIMER
from edge_ecg.runtime.stage_timer import STAGES


def _ms(v) -> str:
    return "-" if v is None else f"{v:.2f}"


def _machine_lines(rep: dict) -> list[str]:
    m = rep["machine"]
    return [
        (f"machine: {m['cpu_model']}{' (' + m['board'] + ')' if m['board'] else ''}, "
        f"{m['cores']}/{m['cores_total']} CPU(s) usable, {m['arch']}, {m['os']}"),
        (f"software: python {m['python']}, numpy {m['numpy']}, onnxruntime {m['onnxruntime']}, "
        f"openvino {m['openvino']}, edge-ecg {rep['edge_ecg_version']}"),
        rep["honesty"],
        _load_line(rep),
    ]


def _load_line(rep: dict) -> str:
    load = rep.get("conditions", {}).get("load_avg_start")
    if not load:
        return "load average: unknown"
    return (f"load average at start (1/5/15 min): {', '.join(f'{x:.2f}' for x in load)} "
            "(other processes share these CPUs: compare figures taken under similar load)")


def _labels(reps: list[dict]) -> list[str]:
    """Variant names, prefixed with the bundle's folder name where several bundles appear."""
    if len({r["bundle"] for r in reps}) == 1:
        return [r["variant"]["name"] for r in reps]
    return [f"{Path(r['bundle']).name}:{r['variant']['name']}" for r in reps]


def format_report(rep: dict) -> str:
    """One run as text: where, what, per-stage table, the headline figures, budgets."""
    lines = _machine_lines(rep)
    v, p, s = rep["variant"], rep["profile"], rep["stream"]
    lines += [
        f"profile: {p['name']} ({p['path']}) - {p['description']}",
        (f"bundle: {rep['bundle']}  variant: {v['name']} ({v['backend']}, {v['precision']}, "
        f"{'routed' if v['routed'] else 'all experts'})  model {rep['model']['size_mb']:.3f} MB"),
        (f"placement: threads {rep['placement']['threads_used']} "
        f"(profile {rep['placement']['threads_profile']}); {rep['placement']['note']}"),
        (f"stream: {s['source']}  {s['signal_s']:.1f} s of signal, {s['n_leads']} leads at "
        f"{s['fs_hz']:g} Hz, window {s['window_s']:g} s, hop {s['hop_s']:g} s, "
        f"{s['chunks']} chunks, {s['predictions']} predictions, {s['withheld']} withheld"),
        "",
        (f"{'stage':<11}{'n':>7}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'mean ms':>10}"
        f"{'total s':>10}"),
    ]
    for name in (*STAGES, "per_hop"):
        st = rep["stages"][name] if name in rep["stages"] else rep["per_hop"]
        lines.append(f"{name:<11}{st['n']:>7}{_ms(st['p50_ms']):>10}{_ms(st['p90_ms']):>10}"
                     f"{_ms(st['p99_ms']):>10}{_ms(st['mean_ms']):>10}{st['total_s']:>10.3f}")
    ss, th, mem = rep["single_stream"], rep["throughput"], rep["memory"]
    lines += [
        "",
        (f"single-stream p90 (MLPerf style, inference only, {ss['queries']} queries): "
        f"{_ms(ss['p90_ms'])} ms"),
        (f"settle wait (signal time from a window's end to the chunk that released it, the "
         f"beat detector's look-ahead): p50 {_ms(rep['settle_delay_ms']['p50_ms'])} ms, "
         f"p90 {_ms(rep['settle_delay_ms']['p90_ms'])} ms"),
        (f"throughput: {_ms(th['realtime_factor'])}x real time "
        f"({th['signal_s']:.1f} s of signal in {th['processing_s']:.3f} s of processing)"),
        (f"memory: peak RSS {mem['peak_rss_mb']:.1f} MB (before the backend "
        f"{mem['rss_before_backend_mb']:.1f} MB)"),
        "",
        f"budgets of {p['name']!r}" + ("" if rep["on_profile_device"] else " (PROXY check)") + ":",
    ]
    for key, b in rep["budgets"].items():
        meas = "-" if b["measured"] is None else f"{b['measured']:.2f}"
        cmp_ = ">=" if key.startswith("min_") else "<="
        lines.append(f"  {key:<22} {meas:>10} {cmp_} {b['limit']:<10g} "
                     f"{'pass' if b['pass'] else 'FAIL'}")
    lines.append(f"result: {'PASS' if rep['pass'] else 'FAIL'}"
                 + ("" if rep["on_profile_device"] else " (proxy: figures from this machine)"))
    lines.append(DISCLAIMER)
    return "\n".join(lines)


def format_comparison(reps: list[dict]) -> str:
    """Several variants side by side: one row each, ratios to the first."""
    if not reps:
        return ""
    lines = _machine_lines(reps[0])
    lines.append(f"profile: {reps[0]['profile']['name']}  stream: {reps[0]['stream']['source']}")
    lines.append("")
    w = max(12, *(len(x) for x in _labels(reps))) + 2
    head = (f"{'variant':<{w}}{'model MB':>9}{'inf p90':>9}{'hop p50':>9}{'hop p90':>9}"
            f"{'hop p99':>9}{'SS p90':>9}{'x RT':>8}{'RSS MB':>8}{'vs 1st':>8}  budgets")
    lines.append(head)
    base = reps[0]["per_hop"]["p90_ms"]
    for r, label in zip(reps, _labels(reps)):
        ratio = (r["per_hop"]["p90_ms"] / base) if base else float("nan")
        lines.append(
            f"{label:<{w}}{r['model']['size_mb']:>9.3f}"
            f"{_ms(r['stages']['inference']['p90_ms']):>9}{_ms(r['per_hop']['p50_ms']):>9}"
            f"{_ms(r['per_hop']['p90_ms']):>9}{_ms(r['per_hop']['p99_ms']):>9}"
            f"{_ms(r['single_stream']['p90_ms']):>9}{_ms(r['throughput']['realtime_factor']):>8}"
            f"{r['memory']['peak_rss_mb']:>8.1f}{ratio:>8.2f}  "
            f"{'PASS' if r['pass'] else 'FAIL'}")
    if len(reps[0].get("rounds", ())) > 1:
        lines.append(f"each row: the median of {len(reps[0]['rounds'])} round-robin runs by "
                     "hop p90; hop p90 of every run: " + "; ".join(
                         f"{lab} " + "/".join(_ms(x["per_hop_p90_ms"]) for x in r["rounds"])
                         for lab, r in zip(_labels(reps), reps)))
    lines.append("(ms unless noted; hop = end-to-end per hop; SS = MLPerf-style single-stream; "
                 "x RT = throughput in multiples of real time; RSS = peak of "
                 + ("a fresh process per variant)" if all(r.get("isolated_process") for r in reps)
                    else "the one process so far, which grows across variants)"))
    lines.append(DISCLAIMER)
    return "\n".join(lines)


def plot_latency(reps: list[dict], out: str | Path) -> Path:
    """Violin of per-hop latency per variant (p50/p90/p99 marked) and per-stage p90 bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = Path(out)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5),
                                   gridspec_kw={"width_ratios": [1.2, 1]})
    labels = _labels(reps)
    data = [np.asarray(r["per_hop_ms"], dtype=float) for r in reps]
    pos = np.arange(1, len(reps) + 1)
    ok = [d for d in data if d.size]
    if ok:
        parts = ax1.violinplot([d if d.size else np.zeros(1) for d in data], positions=pos,
                               showextrema=False, widths=0.8)
        for body in parts["bodies"]:
            body.set_alpha(0.5)
    for x, d in zip(pos, data):
        if d.size:
            for q, style in zip(np.percentile(d, [50, 90, 99]), ("-", "--", ":")):
                ax1.hlines(q, x - 0.3, x + 0.3, colors="k", linestyles=style, linewidth=1)
    budget = reps[0]["profile"]["budget_latency_p90_ms"]
    top = max((float(d.max()) for d in ok), default=budget)
    if budget <= 3 * top:
        ax1.axhline(budget, color="tab:red", linewidth=1, label=f"p90 budget {budget:g} ms")
    else:   # a budget far above the data would flatten the violins: say it instead
        ax1.plot([], [], color="tab:red", label=f"p90 budget {budget:g} ms (off scale)")
    ax1.set_xticks(pos, labels, fontsize=7, rotation=20, ha="right")
    ax1.set_ylabel("per-hop latency (ms)")
    ax1.set_title("per-hop latency (lines: p50 solid, p90 dashed, p99 dotted)", fontsize=9)
    ax1.legend(fontsize=7, loc="upper right")
    width = 0.8 / max(len(reps), 1)
    xs = np.arange(len(STAGES))
    for i, r in enumerate(reps):
        vals = [r["stages"][s]["p90_ms"] or 0.0 for s in STAGES]
        ax2.bar(xs + i * width, vals, width, label=labels[i])
    ax2.set_xticks(xs + width * (len(reps) - 1) / 2, STAGES, fontsize=8)
    ax2.set_ylabel("p90 per stage (ms)")
    ax2.set_title("per-stage p90", fontsize=9)
    ax2.legend(fontsize=6)
    m = reps[0]["machine"]
    proxy = "" if reps[0]["on_profile_device"] else " - PROXY for " + reps[0]["profile"]["name"]
    fig.suptitle(f"measured on {m['cpu_model']} ({m['cores']} CPUs){proxy}\n{DISCLAIMER}",
                 fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
