"""Training: masked-reconstruction pretraining, then peft LoRA fine-tuning on the tasks.

Multi-task loss with missing labels (NaN) masked out; regression targets divided by
`TaskSpec.scale`; random lead dropout so 1-, 2- and 3-lead monitors can use the 12-lead model.
Data parallel under `torchrun` (DDP, gloo backend): every rank takes an equal shard of the same
seeded permutation; rank 0 evaluates and writes.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edge_ecg.model.evaluation import batches, evaluate
from edge_ecg.model.lora import add_lora, base_of, freeze_batchnorm, merged
from edge_ecg.model.moe import ECGMoE, expand_valid
from edge_ecg.model.pretrain import PretrainHeads, PretrainStep, make_masks
from edge_ecg.signal.contract import INPUT_NAMES

# Lead sets of real monitors (by name; those the contract lacks are ignored): lead II alone
# (3-electrode monitor), II + V1 / II + V5 (MIT-BIH, 5-electrode monitors), I + II with the
# derived limb leads, and that plus V1.
MONITOR_LEADS = (("II",), ("II", "V1"), ("II", "V5"), ("I",), ("V1",),
                 ("I", "II", "III", "aVR", "aVL", "aVF"),
                 ("I", "II", "III", "aVR", "aVL", "aVF", "V1"))


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 4
    pretrain_epochs: int = 1
    batch_size: int = 32
    lr: float = 3e-3                   # LoRA adapters and saved modules
    pretrain_lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    progress: bool = True
    grad_clip: float = 1.0


@dataclass
class History:
    pretrain_loss: list[float] = field(default_factory=list)   # mean per epoch
    train_loss: list[float] = field(default_factory=list)      # mean per epoch
    first_loss: float = math.nan                               # first fine-tuning batches
    seconds: dict[str, float] = field(default_factory=dict)


# -- distributed -----------------------------------------------------------------------------
def dist_setup() -> tuple[int, int]:
    """`(rank, world)`; initialises a gloo process group when run under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return dist.get_rank(), dist.get_world_size()


def dist_teardown() -> None:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def shard(n: int, epoch: int, seed: int, batch_size: int, rank: int, world: int,
          p: np.ndarray | None = None) -> list[np.ndarray]:
    """This rank's batches of one epoch: equal-length shards of one seeded permutation, or,
    with draw probabilities `p` (a weighted mixture), of n seeded weighted draws."""
    rng = np.random.default_rng([seed, epoch])
    perm = rng.permutation(n) if p is None else rng.choice(n, size=n, replace=True, p=p)
    per_rank = n // world
    mine = perm[rank::world][:per_rank]
    n_batches = max(1, per_rank // batch_size) if per_rank >= batch_size else 1
    return [mine[i * batch_size:(i + 1) * batch_size] for i in range(n_batches)
            if len(mine[i * batch_size:(i + 1) * batch_size])]


def _wrap(module: nn.Module, world: int) -> nn.Module:
    if world <= 1:
        return module
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(module, find_unused_parameters=True)


# -- batches ---------------------------------------------------------------------------------
def to_batch(inputs: dict[str, np.ndarray], idx: np.ndarray) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(np.ascontiguousarray(inputs[k][idx], dtype=np.float32))
                 for k in INPUT_NAMES)


def lead_dropout(batch: tuple[torch.Tensor, ...], p: float, leads: tuple[str, ...],
                 gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """With probability `p` per window, keep only one monitor's lead set (MONITOR_LEADS)."""
    x, lead_mask, beats, *rest = batch
    b = x.shape[0]
    sets = []
    for names in MONITOR_LEADS:
        m = torch.tensor([1.0 if n in names else 0.0 for n in leads])
        if m.sum() > 0:
            sets.append(m)
    drop = torch.rand(b, generator=gen) < p
    which = torch.randint(len(sets), (b,), generator=gen)
    keep = torch.stack([sets[int(i)] for i in which])                     # (B, L)
    keep = torch.where(drop[:, None], keep, torch.ones_like(keep))
    new_mask = lead_mask * keep
    # A window whose own leads miss the chosen set keeps its leads rather than none.
    empty = new_mask.sum(1, keepdim=True) == 0
    new_mask = torch.where(empty, lead_mask, new_mask)
    return (x * new_mask[:, :, None], new_mask, beats * new_mask[:, None, :, None], *rest)


def gap_dropout(batch: tuple[torch.Tensor, ...], p: float,
                gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """With probability `p` per window, stretches of it lost as a lossy link loses frames:
    each validity segment starts a lost run with a rate drawn per window from U(0, 4 %), each
    run 1-3 segments long (40-120 ms, the runtime's longest fill), on every lead. Only `valid`
    changes: the model zeroes what it marks invalid itself, exactly as at run time."""
    iv = INPUT_NAMES.index("valid")
    valid = batch[iv]
    b, _, n_seg = valid.shape
    on = torch.rand(b, 1, generator=gen) < p
    rate = torch.rand(b, 1, generator=gen) * 0.04
    start = (torch.rand(b, n_seg, generator=gen) < rate) & on
    length = torch.randint(1, 4, (b, n_seg), generator=gen)
    lost = start.clone()
    for k in (1, 2):
        lost[:, k:] |= start[:, :-k] & (length[:, :-k] > k)
    return (*batch[:iv], valid * (~lost)[:, None, :].to(valid.dtype), *batch[iv + 1:])


def lead_off(batch: tuple[torch.Tensor, ...], p: float,
             gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """With probability `p` per window, each of its leads off with probability 1/2 (an
    electrode come loose; the runtime masks it through `lead_mask`). A window keeps at least
    one of its leads."""
    x, lead_mask, beats, *rest = batch
    b, n_leads = lead_mask.shape
    on = torch.rand(b, 1, generator=gen) < p
    off = (torch.rand(b, n_leads, generator=gen) < 0.5) & on
    new_mask = lead_mask * (~off).to(lead_mask.dtype)
    empty = new_mask.sum(1, keepdim=True) == 0
    new_mask = torch.where(empty, lead_mask, new_mask)
    return (x * new_mask[:, :, None], new_mask, beats * new_mask[:, None, :, None], *rest)


def augment(batch: tuple[torch.Tensor, ...], cfg, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    """A training batch as monitors deliver it: fewer leads (`lead_dropout`), a lead off
    (`lead_off`), frames lost (`gap_dropout`)."""
    batch = lead_dropout(batch, cfg.lead_dropout, cfg.contract.leads, gen)
    batch = lead_off(batch, cfg.lead_off, gen)
    return gap_dropout(batch, cfg.gap_dropout, gen)


def label_batch(labels: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.asarray(v[idx], dtype=np.float32)) for k, v in labels.items()}


def class_weights(labels: np.ndarray, n_classes: int, cap: float = 3.0) -> torch.Tensor:
    """Cross-entropy weights for a per-beat task: the square root of how much rarer each class
    is than the most common one, at most `cap`. Ectopic beats are a few per cent of MIT-BIH's;
    unweighted, the head calls every beat N (de Chazal et al. 2004 weight their discriminant
    likewise). The cap keeps the rarest classes (fusion: 0.8 % of the beats) from taking normal
    beats: uncapped (12x for F), a quarter of the validation split's N beats were called F."""
    y = np.asarray(labels, dtype=np.float64)
    y = y[np.isfinite(y)].astype(int)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = np.where(counts > 0, np.sqrt(counts.max() / np.maximum(counts, 1.0)), 0.0)
    return torch.as_tensor(np.minimum(w, cap), dtype=torch.float32)


def task_losses(cfg, logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor],
                weights: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Per-task loss over the windows (per-beat tasks: the beat slots) that carry that task's
    label. `weights`: class weights of per-beat tasks (`class_weights`)."""
    out = {}
    for t in cfg.tasks:
        if t.name not in labels:
            continue
        y = labels[t.name]
        if t.per_beat:
            z = logits[t.name]                                 # (B, M', C)
            y = y[:, : z.shape[1]]
            ok = torch.isfinite(y)
            if bool(ok.any()):
                w = None if weights is None else weights.get(t.name)
                out[t.name] = F.cross_entropy(z[ok], y[ok].long(), weight=w)
            continue
        ok = torch.isfinite(y)
        if not bool(ok.any()):
            continue
        z = logits[t.name][ok]
        y = y[ok]
        if t.kind == "regression":
            # Smooth L1 with a small beta: MAE is the metric, L2 near zero keeps it smooth.
            out[t.name] = F.smooth_l1_loss(z[:, 0], y / t.scale, beta=0.01)
        elif t.kind == "binary":
            out[t.name] = F.binary_cross_entropy_with_logits(z[:, 0], y)
        else:
            out[t.name] = F.cross_entropy(z, y.long())
    return out


class FinetuneStep(nn.Module):
    """Multi-task loss + load balance as one module (so DDP can wrap it)."""

    def __init__(self, peft_model: nn.Module, weights: dict[str, torch.Tensor] | None = None):
        super().__init__()
        self.peft_model = peft_model
        self.weights = weights or {}

    def forward(self, batch, labels):
        inner = base_of(self.peft_model)
        logits, _ = inner.raw(*batch)
        losses = task_losses(inner.cfg, logits, labels, self.weights)
        task = torch.stack(list(losses.values())).sum() if losses else logits[
            inner.cfg.task_names[0]].sum() * 0.0
        return task + inner.cfg.balance_weight * inner.last_aux_loss, task.detach()


@torch.no_grad()
def head_skip_inputs(model: ECGMoE, inputs: dict[str, np.ndarray],
                     chunk: int = 256) -> np.ndarray:
    """The heads' skip features (`ECGMoE.skip_features`) of every window, float64 `(N, n_skip)`."""
    n = len(inputs["period"])
    out = []
    for i in range(0, n, chunk):
        def t(k):
            return torch.as_tensor(np.asarray(inputs[k][i:i + chunk]), dtype=torch.float32)
        mask = t("lead_mask")
        valid = t("valid") * mask[:, :, None]
        x = t("x") * expand_valid(valid, model.cfg.contract.valid_seg, inputs["x"].shape[-1])
        s = model.summary(x, mask, t("beat_mask"), t("period"), valid)
        f = model.skip_features(s, t("period"))
        out.append(np.zeros((s.shape[0], 0)) if f is None else f.double().numpy())
    return np.concatenate(out, 0) if out else np.zeros((0, 0))


@torch.no_grad()
def init_heads(model: ECGMoE, inputs: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> None:
    """Start each head at a training-set prior, so the short fine-tuning spends its steps on
    the signal: regression heads at the least-squares linear probe of the (scaled) target on
    the period features, through the head's `skip` (last layer zero: the MLP adds to it);
    a head with a period prior starts at the mean residual over it;
    binary heads at the log prevalence; multiclass heads at the log class frequencies."""
    skip = head_skip_inputs(model, inputs)
    for t in model.cfg.tasks:
        y = np.asarray(labels.get(t.name, []), dtype=np.float64)
        ok = np.isfinite(y)
        if not ok.any():
            continue
        head = model.heads[t.name]
        bias = head.logits.bias
        if t.per_beat:
            # the prior the class-weighted loss aims at (counts x class_weights)
            counts = np.bincount(y[ok].astype(int), minlength=len(t.labels)) + 1.0
            counts = counts * class_weights(y[ok], len(t.labels)).double().numpy().clip(min=1.0)
            bias.copy_(torch.as_tensor(np.log(counts / counts.sum()), dtype=bias.dtype))
            continue
        if t.kind == "regression":
            target = y[ok] / t.scale
            if head.prior is not None:
                # The head adds the prior itself: start at the mean residual with the skip at
                # zero. A ridge probe of the residual on the (collinear) period features fits
                # large cancelling weights that cancel on synthetic rhythms, not on real ones.
                bias.fill_(float((target - skip[ok, head.prior]).mean()))
                head.logits.weight.zero_()
                continue
            bias.fill_(float(target.mean()))
            if head.n_skip and ok.sum() > skip.shape[1] + 1:
                a = np.concatenate([skip[ok], np.ones((int(ok.sum()), 1))], 1)
                # ridge (1e-3) keeps constant features (all-zero columns) harmless
                w = np.linalg.solve(a.T @ a + 1e-3 * np.eye(a.shape[1]), a.T @ target)
                head.skip.weight.copy_(torch.as_tensor(w[:-1], dtype=bias.dtype)[None, :])
                bias.fill_(float(w[-1]))
                head.logits.weight.zero_()
        elif t.kind == "binary":
            p = float(np.clip(y[ok].mean(), 0.02, 0.98))
            bias.fill_(math.log(p / (1 - p)))
        else:
            counts = np.bincount(y[ok].astype(int), minlength=len(t.labels)) + 1.0
            bias.copy_(torch.as_tensor(np.log(counts / counts.sum()), dtype=bias.dtype))


def _schedule(opt, total: int, warmup: int):
    def f(step):
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
    return torch.optim.lr_scheduler.LambdaLR(opt, f)


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit="batch", disable=not enabled, leave=False)


# -- stages ----------------------------------------------------------------------------------
def pretrain(model: ECGMoE, inputs: dict[str, np.ndarray], settings: TrainSettings,
             rank: int = 0, world: int = 1, p: np.ndarray | None = None) -> list[float]:
    """Masked-reconstruction pretraining of scouts and period experts (in place)."""
    if settings.pretrain_epochs <= 0:
        return []
    cfg = model.cfg
    torch.manual_seed(settings.seed + 1)
    heads = PretrainHeads(model)
    step = _wrap(PretrainStep(model, heads), world)
    params = [p for n, p in model.named_parameters()
              if n.split(".")[0] in ("scouts", "morphology", "rhythm") and p.requires_grad]
    params += list(heads.parameters())
    opt = torch.optim.AdamW(params, lr=settings.pretrain_lr, weight_decay=settings.weight_decay)
    n = len(next(iter(inputs.values())))
    n_batches = len(shard(n, 0, settings.seed, settings.batch_size, rank, world))
    sched = _schedule(opt, n_batches * settings.pretrain_epochs, max(1, n_batches // 4))
    gen = torch.Generator().manual_seed(settings.seed * 7919 + rank)
    history = []
    model.train()
    bar = _bar(n_batches * settings.pretrain_epochs, "pretrain", settings.progress and rank == 0)
    for epoch in range(settings.pretrain_epochs):
        total = 0.0
        for idx in shard(n, 100 + epoch, settings.seed, settings.batch_size, rank, world, p):
            batch = augment(to_batch(inputs, idx), cfg, gen)
            loss = step(*batch, make_masks(batch, cfg, gen))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
            opt.step()
            sched.step()
            total += float(loss.detach())
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
        history.append(total / n_batches)
    bar.close()
    return history


def finetune(model: ECGMoE, inputs: dict[str, np.ndarray], labels: dict[str, np.ndarray],
             settings: TrainSettings, rank: int = 0, world: int = 1, history: History | None = None,
             p: np.ndarray | None = None):
    """peft LoRA fine-tuning: base frozen, adapters + heads/gates trained. Returns the peft model
    (unmerged; `lora.merged` folds it)."""
    cfg = model.cfg
    torch.manual_seed(settings.seed + 2)
    init_heads(model, inputs, labels)
    peft_model = add_lora(model)
    weights = {t.name: class_weights(labels[t.name], len(t.labels))
               for t in cfg.tasks if t.per_beat and t.name in labels}
    step = _wrap(FinetuneStep(peft_model, weights), world)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    n = len(next(iter(inputs.values())))
    n_batches = len(shard(n, 0, settings.seed, settings.batch_size, rank, world))
    total_steps = n_batches * max(1, settings.epochs)
    sched = _schedule(opt, total_steps, max(1, total_steps // 20))
    gen = torch.Generator().manual_seed(settings.seed * 104729 + rank)
    history = history if history is not None else History()
    bar = _bar(total_steps, "fine-tune", settings.progress and rank == 0)
    first: list[float] = []
    for epoch in range(settings.epochs):
        peft_model.train()
        freeze_batchnorm(peft_model)
        total = 0.0
        for idx in shard(n, epoch, settings.seed, settings.batch_size, rank, world, p):
            batch = augment(to_batch(inputs, idx), cfg, gen)
            loss, task = step(batch, label_batch(labels, idx))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
            opt.step()
            sched.step()
            total += float(task)
            if len(first) < 3:
                first.append(float(task))
            bar.update(1)
            bar.set_postfix(loss=f"{float(task):.4f}")
        history.train_loss.append(total / n_batches)
    bar.close()
    history.first_loss = float(np.mean(first)) if first else math.nan
    peft_model.eval()
    return peft_model


@dataclass
class TrainResult:
    model: ECGMoE                 # merged, eval mode
    metrics: dict                 # {task: {metric: value}} on the held-out split
    usage: dict                   # gate usage per path, task, expert on the held-out split
    history: History
    n_params: int
    n_trainable: int
    flops: int


def train(cfg, train_ds, val_ds, settings: TrainSettings, rank: int = 0, world: int = 1,
          log=print) -> TrainResult:
    """Build, pretrain, LoRA-fine-tune, merge and evaluate an ECG-MoE."""
    from edge_ecg.model.flops import count_flops, count_params

    torch.manual_seed(settings.seed)
    model = ECGMoE(cfg)
    n_params = count_params(model)
    flops = count_flops(model)
    if rank == 0:
        log(f"model {cfg.variant}: {n_params:,} parameters, {flops / 1e6:.1f} MFLOPs per "
            f"{cfg.contract.window_s:g}-s {cfg.contract.n_leads}-lead window; "
            f"{len(train_ds)} training / {len(val_ds)} held-out windows")
    history = History()
    t0 = time.perf_counter()
    p = train_ds.sampling_p() if hasattr(train_ds, "sampling_p") else None
    history.pretrain_loss = pretrain(model, train_ds.inputs, settings, rank, world, p)
    history.seconds["pretrain"] = time.perf_counter() - t0
    if rank == 0 and history.pretrain_loss:
        log("pretrain loss per epoch: " + ", ".join(f"{v:.4f}" for v in history.pretrain_loss))
    t0 = time.perf_counter()
    peft_model = finetune(model, train_ds.inputs, train_ds.labels, settings, rank, world, history,
                          p)
    n_trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    history.seconds["finetune"] = time.perf_counter() - t0
    if rank == 0:
        log(f"LoRA fine-tuning: {n_trainable:,} trainable parameters; loss per epoch: "
            + ", ".join(f"{v:.4f}" for v in history.train_loss))
    final = merged(peft_model).eval()
    metrics, usage = {}, {}
    if rank == 0 and len(val_ds):
        metrics = evaluate(final, val_ds)
        usage = final.expert_usage(batches(val_ds.inputs, 64))
    return TrainResult(final, metrics, usage, history, n_params, n_trainable, flops)


def settings_dict(s: TrainSettings) -> dict:
    return asdict(s)
