"""The period-aware expert, dual path: morphology experts over R-aligned beats, rhythm experts
over the RR sequence and period features (inputs computed by `edge_ecg.signal`).

Masks are float (1.0 = present). Pooling over beats is masked mean plus masked max: the mean
carries the typical beat, the max lets a single ectopic beat (a PVC) show. With no beats at all
both pools are zero, never NaN.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edge_ecg.model.attention import Attention
from edge_ecg.model.config import ECGMoEConfig

BIG = 1e4  # additive mask value; finite so an all-masked row stays finite (and exports)


def masked_mean_max(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`h` `(B, M, d)`, `mask` `(B, M)` -> `(B, 2d)` masked mean and max (zero if all masked)."""
    m = mask[..., None]
    count = m.sum(1).clamp(min=1.0)
    mean = (h * m).sum(1) / count
    any_beat = (mask.sum(1, keepdim=True) > 0).to(h.dtype)
    mx = (h + (m - 1.0) * BIG).amax(1) * any_beat
    return torch.cat([mean, mx], -1)


# -- morphology ------------------------------------------------------------------------------
class BeatCNN(nn.Module):
    """Per-beat conv encoder `(N, L, beat_len) -> (N, 2c)`."""

    def __init__(self, n_in: int, c: int, dilated: bool):
        super().__init__()
        self.conv1 = nn.Conv1d(n_in, c, 9, stride=4, padding=4)   # 500 -> 125 Hz
        self.bn1 = nn.BatchNorm1d(c)
        if dilated:   # wide context over the QRS-T complex; not a LoRA target (see scouts.py)
            self.dconv = nn.Conv1d(c, 2 * c, 5, dilation=3, padding=6)
        else:
            self.conv2 = nn.Conv1d(c, 2 * c, 5, stride=2, padding=2)
        self.bn2 = nn.BatchNorm1d(2 * c)
        self.dilated = dilated

    def forward(self, b: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(b)))
        h = self.dconv(h) if self.dilated else self.conv2(h)
        return F.relu(self.bn2(h)).mean(-1)


class BeatMLP(nn.Module):
    """Per-beat MLP over the beat at 100 Hz, all leads."""

    def __init__(self, n_leads: int, beat_len: int, pool: int, c: int):
        super().__init__()
        self.pool_by = pool
        self.fc1 = nn.Linear(n_leads * (beat_len // pool), 4 * c)
        self.fc2 = nn.Linear(4 * c, 2 * c)

    def forward(self, b):
        low = F.avg_pool1d(b, self.pool_by)
        return F.relu(self.fc2(F.relu(self.fc1(low.flatten(1)))))


class MorphologyExpert(nn.Module):
    """One morphology expert: per-beat encoder, masked mean/max over beats, projection `out`.

    `beat_deviation` feeds each beat minus the window's mean beat (its template), so an ectopic
    beat stands out whatever the patient's normal morphology.
    """

    def __init__(self, kind: str, cfg: ECGMoEConfig):
        super().__init__()
        c = cfg.contract
        ch = cfg.beat_channels
        self.kind = kind
        if kind == "beat_mlp":
            self.encoder = BeatMLP(c.n_leads, c.beat_len, cfg.beat_pool, ch)
        else:
            self.encoder = BeatCNN(c.n_leads, ch, dilated=(kind == "beat_dilated"))
        self.dim = 2 * ch
        self.out = nn.Linear(2 * self.dim, cfg.d_model)

    def beat_features(self, beats: torch.Tensor, beat_mask: torch.Tensor) -> torch.Tensor:
        """`(B, M, L, len)` -> per-beat features `(B, M, dim)`."""
        b, m, n_leads, n = beats.shape
        if self.kind == "beat_deviation":
            w = beat_mask[:, :, None, None]
            template = (beats * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp(min=1.0)
            beats = (beats - template) * w
        h = self.encoder(beats.reshape(b * m, n_leads, n))
        return h.reshape(b, m, self.dim)

    def pool(self, h, beat_mask):
        """Per-beat features `(B, M, dim)` -> the window's `(B, D)`."""
        return F.relu(self.out(masked_mean_max(h, beat_mask)))

    def forward(self, beats, beat_mask):
        return self.pool(self.beat_features(beats, beat_mask), beat_mask)   # (B, D)


def beat_rr_features(beat_rr: torch.Tensor) -> torch.Tensor:
    """`beat_rr` `(B, M, 3)` ms (pre, post, window mean; 0 = unknown) -> `(B, M, 8)`: the three
    in seconds, pre/mean, post/mean and post/pre (the prematurity and compensatory-pause ratios
    a cardiologist reads off a PVC), and whether pre and post are known."""
    s = beat_rr * 1e-3
    pre, post, mean = s[..., 0], s[..., 1], s[..., 2]
    has_pre = (pre > 0).to(s.dtype)
    has_post = (post > 0).to(s.dtype)
    safe_mean = mean.clamp(min=0.2)
    r_pre = pre / safe_mean * has_pre
    r_post = post / safe_mean * has_post
    r_pp = post / pre.clamp(min=0.1) * has_pre * has_post
    return torch.stack([pre, post, mean, r_pre, r_post, r_pp, has_pre, has_post], -1)


N_BEAT_RR = 8
N_BEAT_SHAPE = 3


def beat_shape_features(beats: torch.Tensor, beat_mask: torch.Tensor) -> torch.Tensor:
    """How each beat differs from the window's typical beat: `(B, M, L, len)` beats (masked
    leads zero) -> `(B, M, 3)`: correlation with the window's mean beat (its template) over
    all leads, energy relative to the template, and the largest deviation from it relative to
    the template's peak. An ectopic beat has its own shape whatever the patient's normal one:
    the comparison generalises across patients where raw shapes do not (a PVC in one patient
    looks like a bundle branch block beat in another)."""
    w = beat_mask[:, :, None, None]
    tmpl = (beats * w).sum(1, keepdim=True) / w.sum(1, keepdim=True).clamp(min=1.0)
    b = beats.flatten(2)                                                 # (B, M, L*len)
    t = tmpl.flatten(2)                                                  # (B, 1, L*len)
    return shape_against_template(b, t, (b * t).sum(-1), beat_mask)


def shape_against_template(b: torch.Tensor, t: torch.Tensor, bt: torch.Tensor,
                           beat_mask: torch.Tensor) -> torch.Tensor:
    """`beat_shape_features` from the flattened beats `b` `(B, M, K)`, their template `t`
    `(B, 1, K)` and each beat's dot product with it `bt` `(B, M)` (the export computes `t` and
    `bt` as MatMuls, export.graph_forms)."""
    bb = (b * b).sum(-1)
    tt = (t * t).sum(-1).clamp(min=1e-6)
    corr = bt / (bb.sqrt() * tt.sqrt()).clamp(min=1e-6)
    energy = (bb / tt).clamp(max=25.0).sqrt()
    dev = (b - t).abs().amax(-1) / t.abs().amax(-1).clamp(min=1e-3)
    return torch.stack([corr, energy, dev.clamp(max=10.0)], -1) * beat_mask[..., None]


class BeatHead(nn.Module):
    """Per-beat classes `(B, M, n_out)` from the morphology experts' per-beat features.

    Each morphology expert's beat features go through its own projection (`proj[e]`); the
    beat task's row of the morphology gate mixes them (the same routing the window tasks get,
    so a deployment keeps only the experts the beat task uses), then the beat's RR context
    joins with how the beat differs from the window's typical beat (`beat_shape_features`),
    and an MLP gives the class logits. Trained whole, like the other heads.
    """

    def __init__(self, dims: list[int], d: int, d_hidden: int, n_out: int,
                 n_context: int = 0):
        super().__init__()
        self.proj = nn.ModuleList(nn.Linear(k, d) for k in dims)
        self.n_context = n_context
        self.hidden = nn.Linear(d + N_BEAT_RR + N_BEAT_SHAPE + n_context, d_hidden)
        self.logits = nn.Linear(d_hidden, n_out)
        if n_context:
            # a linear path from the context straight to the logits (the transparent peer's
            # form: a premature, narrow beat with a P wave is S, a wide one unlike the template
            # is V), the MLP learning what it misses
            self.context = nn.Linear(n_context, n_out)

    def forward(self, per_beat: list[torch.Tensor], gate: torch.Tensor, beat_rr: torch.Tensor,
                shape: torch.Tensor, beat_ctx: torch.Tensor | None = None):
        """`per_beat`: one `(B, M, dim_e)` per expert; `gate` `(B, E)`; `beat_rr` `(B, M, 3)`;
        `shape` `(B, M, 3)` (`beat_shape_features`); `beat_ctx` `(B, M, n_context)` (the
        patient context, with `n_context`) -> `(B, M, n_out)`."""
        h = torch.stack([F.relu(p(f)) for p, f in zip(self.proj, per_beat)], 1)  # (B, E, M, D)
        return self.classify(torch.einsum("be,bemd->bmd", gate, h), beat_rr, shape, beat_ctx)

    def classify(self, h: torch.Tensor, beat_rr: torch.Tensor, shape: torch.Tensor,
                 beat_ctx: torch.Tensor | None = None) -> torch.Tensor:
        """The logits from the gate-mixed beat features `h` `(B, M, d)` and the beat's RR,
        shape and patient context (shared with the export's routed head)."""
        parts = [h, beat_rr_features(beat_rr), shape]
        if self.n_context:
            parts.append(beat_ctx)
        z = self.logits(F.relu(self.hidden(torch.cat(parts, -1))))
        if self.n_context:
            z = z + self.context(beat_ctx)
        return z


# -- rhythm ----------------------------------------------------------------------------------
def rr_channels(rr_ms: torch.Tensor, rr_mask: torch.Tensor) -> torch.Tensor:
    """`(B, M)` -> `(B, 3, M)`: RR in seconds, successive difference, mask (zeros where absent)."""
    r = rr_ms * 1e-3 * rr_mask
    d = torch.cat([torch.zeros_like(r[:, :1]), r[:, 1:] - r[:, :-1]], 1)
    d = d * rr_mask * torch.cat([torch.zeros_like(rr_mask[:, :1]), rr_mask[:, :-1]], 1)
    return torch.stack([r, d, rr_mask], 1)


class RhythmExpert(nn.Module):
    """One rhythm expert over `(rr_ms, rr_mask, period)`:

    - `rr_mlp`: MLP over the whole padded RR sequence and its mask;
    - `rr_conv`: 1-D convs along the RR sequence, masked mean/max;
    - `rr_attention`: self-attention over RR tokens with a key mask;
    - `period_mlp`: MLP over the HRV/period feature vector.
    """

    def __init__(self, kind: str, cfg: ECGMoEConfig):
        super().__init__()
        c, h = cfg.contract, cfg.rhythm_hidden
        m, p = c.max_beats, len(c.period_features)
        self.kind = kind
        if kind == "rr_mlp":
            self.fc1 = nn.Linear(3 * m, h)
            self.fc2 = nn.Linear(h, h)
        elif kind == "rr_conv":
            self.conv1 = nn.Conv1d(3, h, 3, padding=1)
            self.conv2 = nn.Conv1d(h, h, 3, padding=1)
            self.fc2 = nn.Linear(2 * h, h)
        elif kind == "rr_attention":
            self.token = nn.Linear(3, h)
            self.pos = nn.Parameter(torch.randn(1, m, h) * 0.02)
            self.attn = Attention(h, 2)
            self.fc2 = nn.Linear(2 * h, h)
        elif kind == "period_mlp":
            self.fc1 = nn.Linear(p, h)
            self.fc2 = nn.Linear(h, h)
        else:
            raise ValueError(kind)
        self.out = nn.Linear(h, cfg.d_model)

    def forward(self, rr_ms, rr_mask, period):
        ch = rr_channels(rr_ms, rr_mask)                                     # (B, 3, M)
        if self.kind == "rr_mlp":
            h = F.relu(self.fc2(F.relu(self.fc1(ch.flatten(1)))))
        elif self.kind == "rr_conv":
            t = F.relu(self.conv2(F.relu(self.conv1(ch)))).transpose(1, 2)   # (B, M, h)
            h = F.relu(self.fc2(masked_mean_max(t, rr_mask)))
        elif self.kind == "rr_attention":
            t = self.token(ch.transpose(1, 2)) + self.pos                    # (B, M, h)
            bias = ((rr_mask - 1.0) * BIG)[:, None, None, :]                 # mask keys
            t = t + self.attn(t, bias)
            h = F.relu(self.fc2(masked_mean_max(t, rr_mask)))
        else:
            h = F.relu(self.fc2(F.relu(self.fc1(period))))
        return F.relu(self.out(h))                                           # (B, D)
