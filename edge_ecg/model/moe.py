"""ECG-MoE: scouts -> period-aware expert (morphology | rhythm) -> gates -> fusion -> heads.

Activations are ReLU throughout: onnxruntime fuses Conv/Gemm + ReLU into one kernel and int8
absorbs a ReLU into the quantized range, while an exported GELU is an Erf plus three elementwise
kernels per use. Measured on the edge preset (batch 1, one thread): ONNX fp32 6.4 -> 3.8 ms.

`forward` takes the nine contract inputs positionally (INPUT_NAMES order, float32) and returns
an ordered dict of named graph outputs: each task (regression in task units, binary positive
probability, multiclass probabilities, a per-beat task's class probabilities per beat slot
`(B, max_beats, n_classes)`) then `gate_scout`, `gate_morphology`, `gate_rhythm`
`(B, n_tasks, n_experts)`.

A per-beat task (AAMI beat classes) reads the morphology path only: each beat's features from
the morphology experts, mixed by the task's morphology gate row, with the beat's RR context
(`BeatHead`). A model whose tasks are all per-beat (a `beat`-only deployment) computes neither
scouts nor rhythm experts nor fusion. During training `last_aux_loss` holds the gates' auxiliary routing
loss (`cfg.balance`: Switch load balance or Mod-Squad mutual information), mean over paths.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from edge_ecg.model.config import PATHS, ECGMoEConfig
from edge_ecg.model.gate import InputSummary, TopKGate, load_balance_loss, mutual_info_loss
from edge_ecg.model.period_expert import (
    BeatHead,
    MorphologyExpert,
    RhythmExpert,
    beat_shape_features,
)
from edge_ecg.model.scouts import build_scout
from edge_ecg.signal.patient_context import N_CONTEXT


def expand_valid(valid: torch.Tensor, seg: int, n: int) -> torch.Tensor:
    """The validity mask `(B, L, n_seg)` per sample `(B, L, n)`: every segment repeated `seg`
    times. Multiplying the window by it zeroes what was filled, not measured (a lost frame's
    straight-line fill): the model never reads an invented sample. Zero is the window's
    median level after the contract's normalisation. (Expand + reshape: exports as two
    plain ONNX ops.)"""
    return valid[..., None].expand(-1, -1, -1, seg).flatten(2)[..., :n]


class Fusion(nn.Module):
    """Linear `proj` -> LayerNorm -> ReLU: one level of the hierarchical fusion."""

    def __init__(self, d_in: int, d: int):
        super().__init__()
        self.proj = nn.Linear(d_in, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, h):
        return F.relu(self.norm(self.proj(h)))


class Head(nn.Module):
    """Task head: `hidden` -> ReLU -> `logits`, plus a linear `skip` from the last `n_skip`
    inputs (the period features) and, for a task with a period prior, that feature itself
    (`prior` indexes the period features): the head then learns a residual over a quantity the
    signal core measured. Not LoRA targets: heads are trained whole. `skip` starts at zero."""

    def __init__(self, d_in: int, d_hidden: int, n_out: int, n_skip: int = 0,
                 prior: int | None = None):
        super().__init__()
        self.hidden = nn.Linear(d_in, d_hidden)
        self.logits = nn.Linear(d_hidden, n_out)
        self.n_skip = n_skip
        self.prior = prior
        if n_skip:
            self.skip = nn.Linear(n_skip, n_out, bias=False)
            nn.init.zeros_(self.skip.weight)

    def forward(self, h):
        z = self.logits(F.relu(self.hidden(h)))
        if self.n_skip:
            period = h[..., -self.n_skip:]
            z = z + self.skip(period)
            if self.prior is not None:
                z = z + period[..., self.prior:self.prior + 1]
        return z


class ECGMoE(nn.Module):
    def __init__(self, cfg: ECGMoEConfig, load_external: bool = True):
        super().__init__()
        self.cfg = cfg
        c, d, n_tasks = cfg.contract, cfg.d_model, len(cfg.tasks)
        self.summary = InputSummary(cfg)
        s = self.summary.dim
        self.scouts = nn.ModuleList(build_scout(n, cfg, load_external) for n in cfg.scouts)
        self.gate_scout = TopKGate(s, cfg.gate_hidden, n_tasks, len(cfg.scouts), cfg.k("scout"))
        if cfg.use_period:
            self.morphology = nn.ModuleList(MorphologyExpert(k, cfg)
                                            for k in cfg.morphology_experts)
            self.rhythm = nn.ModuleList(RhythmExpert(k, cfg) for k in cfg.rhythm_experts)
            self.gate_morphology = TopKGate(s, cfg.gate_hidden, n_tasks,
                                            len(cfg.morphology_experts), cfg.k("morphology"))
            self.gate_rhythm = TopKGate(s, cfg.gate_hidden, n_tasks, len(cfg.rhythm_experts),
                                        cfg.k("rhythm"))
            self.fuse_period = Fusion(2 * d, d)
            self.fuse_top = Fusion(2 * d, d)
        else:
            self.fuse_top = Fusion(d, d)
        self.task_embed = nn.Parameter(torch.randn(n_tasks, d) * 0.02)
        self.lead_embed = nn.Linear(c.n_leads, d)
        # The period-aware model also hands the period features (and, with `head_summary`, the
        # input summary) to the heads directly: `skip_features`.
        n_period = len(c.period_features) if cfg.use_period else 0
        n_summary = s if cfg.head_summary else 0
        n_skip = n_summary + n_period
        priors = {t: n_summary + c.period_features.index(f)
                  for t, f in cfg.period_priors.items()}
        beat_dims = ([m.dim for m in self.morphology] if cfg.use_period else [2 * cfg.beat_channels])
        if not cfg.use_period and any(t.per_beat for t in cfg.tasks):
            # baselines without a period path read beats through one plain beat CNN
            self.beat_encoder = MorphologyExpert("beat_cnn", cfg)
        self.heads = nn.ModuleDict({
            t.name: (BeatHead(beat_dims, d, cfg.head_hidden, t.n_outputs,
                              N_CONTEXT if cfg.beat_context else 0) if t.per_beat else
                     Head(d + n_skip, cfg.head_hidden, t.n_outputs, n_skip,
                          priors.get(t.name) if cfg.use_period else None))
            for t in cfg.tasks})
        self.window_tasks = [i for i, t in enumerate(cfg.tasks) if not t.per_beat]
        self.register_buffer("scales", torch.tensor([t.scale for t in cfg.tasks],
                                                    dtype=torch.float32), persistent=False)
        self.last_aux_loss = torch.zeros(())

    # ---------------------------------------------------------------------------------------
    def raw(self, x, lead_mask, beats, beat_mask, rr_ms, rr_mask, period, beat_rr, valid,
            beat_ctx):
        """Head logits per task (regression: target / scale) and gates per path."""
        cfg = self.cfg
        valid = valid * lead_mask[:, :, None]                                # (B, L, n_seg)
        x = x * expand_valid(valid, cfg.contract.valid_seg, x.shape[-1])     # (B, L, T)
        s = self.summary(x, lead_mask, beat_mask, period, valid)             # (B, S)
        aux = []                # one auxiliary routing loss per path, training only
        g_scout, p_scout = self.gate_scout(s)                                # (B, n_tasks, E)
        gates = OrderedDict(gate_scout=g_scout)
        if self.training:
            aux.append(self.routing_loss(g_scout, p_scout))
        beats = beats * lead_mask[:, None, :, None]                          # (B, M, L, len)
        per_beat = None
        if cfg.use_period:
            # Morphology: per-beat features of every slot a per-beat head reads (all of them),
            # pooled over the first `morph_beats` for the window tasks.
            nb = min(cfg.morph_beats, cfg.contract.max_beats)
            slots = cfg.contract.max_beats if len(self.window_tasks) < len(cfg.tasks) else nb
            per_beat = [m.beat_features(beats[:, :slots], beat_mask[:, :slots])
                        for m in self.morphology]                            # E x (B, M', dim)
            g_m, p_m = self.gate_morphology(s)
            g_r, p_r = self.gate_rhythm(s)
            gates["gate_morphology"] = g_m
            gates["gate_rhythm"] = g_r
            if self.training:
                aux += [self.routing_loss(g_m, p_m), self.routing_loss(g_r, p_r)]
        h = skip = None
        if self.window_tasks:
            # Scouts: (B, L, T) -> (B, E, D); gate (B, n_tasks, E) -> (B, n_tasks, D)
            scout_out = torch.stack([m(x, period) for m in self.scouts], 1)
            h = torch.einsum("bte,bed->btd", g_scout, scout_out)
            if cfg.use_period:
                morph_out = torch.stack([m.pool(f[:, :nb], beat_mask[:, :nb])
                                         for m, f in zip(self.morphology, per_beat)], 1)
                rhythm_out = torch.stack([m(rr_ms, rr_mask, period) for m in self.rhythm], 1)
                morph_t = torch.einsum("bte,bed->btd", g_m, morph_out)
                rhythm_t = torch.einsum("bte,bed->btd", g_r, rhythm_out)
                period_t = self.fuse_period(torch.cat([morph_t, rhythm_t], -1))  # (B, n_tasks, D)
                h = self.fuse_top(torch.cat([h, period_t], -1))
            else:
                h = self.fuse_top(h)
            h = h + self.task_embed + self.lead_embed(lead_mask)[:, None, :]  # (B, n_tasks, D)
            skip = self.skip_features(s, period)
        logits = OrderedDict()
        shape = beat_shape_features(beats, beat_mask) if len(self.window_tasks) < len(
            cfg.tasks) else None                                             # (B, M, 3)
        for i, t in enumerate(cfg.tasks):
            if t.per_beat:                                                   # (B, M, n_classes)
                if cfg.use_period:
                    logits[t.name] = self.heads[t.name](per_beat, g_m[:, i], beat_rr, shape,
                                                        beat_ctx)
                else:
                    f = self.beat_encoder.beat_features(beats, beat_mask)
                    logits[t.name] = self.heads[t.name]([f], torch.ones_like(f[:, :1, 0]),
                                                        beat_rr, shape, beat_ctx)
                continue
            hi = h[:, i]
            if skip is not None:
                hi = torch.cat([hi, skip], -1)
            logits[t.name] = self.heads[t.name](hi)
        if self.training:
            self.last_aux_loss = torch.stack(aux).mean()
        return logits, gates

    def routing_loss(self, gate, probs):
        """The configured auxiliary loss of one path's gate (`gate`: sparse top-k, `probs`: its
        full softmax). Switch balances each task over all experts; mutual information keeps the
        experts evenly used overall but concentrates each task on few, so a deployment of a
        few tasks prunes more experts at export."""
        if self.cfg.balance == "mutual_info":
            return mutual_info_loss(probs)
        return load_balance_loss(gate, probs)

    def skip_features(self, summary, period):
        """What the heads read besides the fused features: `[summary, period]` as configured
        (None when neither)."""
        parts = ([summary] if self.cfg.head_summary else []) + (
            [period] if self.cfg.use_period else [])
        return torch.cat(parts, -1) if parts else None

    def forward(self, x, lead_mask, beats, beat_mask, rr_ms, rr_mask, period, beat_rr, valid,
                beat_ctx):
        logits, gates = self.raw(x, lead_mask, beats, beat_mask, rr_ms, rr_mask, period, beat_rr,
                                 valid, beat_ctx)
        out = OrderedDict()
        for i, t in enumerate(self.cfg.tasks):
            z = logits[t.name]
            if t.kind == "regression":
                out[t.name] = z[:, 0] * self.scales[i]                        # task units
            elif t.kind == "binary":
                out[t.name] = torch.sigmoid(z[:, 0])
            else:
                out[t.name] = z.softmax(-1)
        out.update(gates)
        return out

    # ---------------------------------------------------------------------------------------
    @property
    def output_names(self) -> list[str]:
        return [*self.cfg.task_names, *(f"gate_{p}" for p in self.cfg.paths)]

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def pruned(self, keep: dict[str, list[int]], tasks: list[str] | None = None) -> ECGMoE:
        """A model computing only the kept experts (indices per path; a path left out keeps all)
        and the chosen tasks' heads. Gate rows are sliced; softmax and top-k renormalise over
        the kept experts, so the result equals this model wherever the gate only used them."""
        cfg = self.cfg
        tasks = list(tasks or cfg.task_names)
        t_idx = [cfg.task_names.index(t) for t in tasks]
        kept = {}
        for p in cfg.paths:
            idx = sorted(set(keep.get(p, range(len(cfg.experts(p))))))
            if not idx or min(idx) < 0 or max(idx) >= len(cfg.experts(p)):
                raise ValueError(f"pruned: bad expert indices {idx} for path {p!r}")
            kept[p] = idx
        top_k = tuple(min(cfg.k(p), len(kept[p])) if p in kept else cfg.top_k[i]
                      for i, p in enumerate(PATHS))
        new_cfg = replace(
            cfg, tasks=tuple(cfg.tasks[i] for i in t_idx), top_k=top_k,
            scouts=tuple(cfg.scouts[i] for i in kept["scout"]),
            **({"morphology_experts": tuple(cfg.morphology_experts[i] for i in kept["morphology"]),
                "rhythm_experts": tuple(cfg.rhythm_experts[i] for i in kept["rhythm"])}
               if cfg.use_period else {}))
        new = ECGMoE(new_cfg, load_external=False)
        state = {}
        own = self.state_dict()
        for key, val in own.items():
            head, _, rest = key.partition(".")
            if head in ("scouts", "morphology", "rhythm"):
                path = "scout" if head == "scouts" else head
                i, _, rest2 = rest.partition(".")
                if int(i) in kept[path]:
                    state[f"{head}.{kept[path].index(int(i))}.{rest2}"] = val
            elif head.startswith("gate_"):
                continue
            elif head == "heads":
                task, _, sub = rest.partition(".")
                if task not in tasks:
                    continue
                if sub.startswith("proj.") and cfg.use_period:       # a BeatHead's per-expert proj
                    i, _, leaf = sub[len("proj."):].partition(".")
                    if int(i) in kept["morphology"]:
                        state[f"heads.{task}.proj.{kept['morphology'].index(int(i))}.{leaf}"] = val
                    continue
                state[key] = val
            elif key == "task_embed":
                state[key] = val[t_idx]
            else:
                state[key] = val
        for p in cfg.paths:
            g = getattr(self, f"gate_{p}").sliced(t_idx, kept[p], new_cfg.k(p))
            state.update({f"gate_{p}.{k}": v for k, v in g.state_dict().items()})
        new.load_state_dict(state)
        new.train(self.training)
        return new

    @torch.no_grad()
    def expert_usage(self, batches) -> dict[str, dict[str, dict[str, float]]]:
        """Mean gate mass `{path: {task: {expert: mass}}}` over an iterable of input batches
        (tuples in INPUT_NAMES order or dicts of named arrays)."""
        was = self.training
        self.eval()
        sums: dict[str, torch.Tensor] = {}
        n = 0
        for batch in batches:
            if isinstance(batch, dict):
                from edge_ecg.signal.contract import INPUT_NAMES
                batch = tuple(torch.as_tensor(batch[k]) for k in INPUT_NAMES)
            out = self(*batch)
            for p in self.cfg.paths:
                g = out[f"gate_{p}"].sum(0)
                sums[p] = sums[p] + g if p in sums else g
            n += batch[0].shape[0]
        self.train(was)
        # A per-beat task reads the morphology path only: its rows of the other gates compute
        # nothing it uses, so they count as no usage (routing keeps nothing for them).
        for p in sums:
            if p != "morphology":
                for i, t in enumerate(self.cfg.tasks):
                    if t.per_beat:
                        sums[p][i] = 0.0
        usage = {}
        for p in self.cfg.paths:
            mean = (sums[p] / max(n, 1)).tolist() if p in sums else None
            usage[p] = {t: {e: (mean[i][j] if mean else 0.0)
                            for j, e in enumerate(self.cfg.experts(p))}
                        for i, t in enumerate(self.cfg.task_names)}
        return usage


def format_usage(usage: dict) -> str:
    """The gate-usage table, one row per (path, task), one column per expert."""
    lines = []
    for p, per_task in usage.items():
        experts = list(next(iter(per_task.values())).keys())
        lines.append(f"{p:<11} {'task':<13}" + "".join(f"{e:>15}" for e in experts))
        for t, row in per_task.items():
            lines.append(f"{'':<11} {t:<13}" + "".join(f"{row[e]:>15.3f}" for e in experts))
    return "\n".join(lines)
