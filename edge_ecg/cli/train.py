"""`edge-ecg train`: pretrain and fine-tune ECG-MoE with peft LoRA, write a checkpoint.

    edge-ecg train --data recipe:bundled --preset edge --fs-hz 250 --out DIR [--epochs N]
    torchrun --nproc_per_node 2 -m edge_ecg train ...       # data parallel (DDP, gloo)

Prints parameter count, FLOPs per window, held-out per-task metrics (split by subject) and the
gate usage table per task; writes model.safetensors (LoRA merged), config.json, metrics.json.
"""

from __future__ import annotations

import argparse
import json

from edge_ecg import DISCLAIMER


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True,
                   help="data spec: cinc2017:DIR, ptbxl:DIR, ludb:DIR, mitdb:DIR, synth:N[?..], an "
                        "EnECG .jsonl, a mixture 'SPEC;SPEC' or recipe:NAME|PATH.toml (the "
                        "bundled model: recipe:bundled); options ?folds=..&tasks=..&weight=..")
    p.add_argument("--tasks", default="",
                   help="comma-separated task names (default: every task in tasks.toml)")
    p.add_argument("--preset", default="edge", choices=["tiny", "edge", "base"])
    p.add_argument("--variant", default="moe", choices=["moe", "single_scout", "dense_ensemble"],
                   help="ECG-MoE or one of the bench baselines")
    p.add_argument("--out", required=True, help="checkpoint directory to write")
    p.add_argument("--epochs", type=int, default=4, help="LoRA fine-tuning epochs")
    p.add_argument("--pretrain-epochs", type=int, default=1,
                   help="self-supervised masked-reconstruction epochs (0: none)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3, help="fine-tuning learning rate")
    p.add_argument("--val-frac", type=float, default=0.2, help="held-out share of subjects")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--fs-hz", type=float, default=500.0, help="model sampling rate (contract)")
    p.add_argument("--external-checkpoint", default="",
                   help="weights file of an external encoder: adds the 'external' scout")
    p.add_argument("--balance", choices=["mutual_info", "switch"], default=None,
                   help="the gates' auxiliary loss (default: the config's, mutual_info: each "
                        "task on few experts, so exports for fewer tasks keep fewer experts; "
                        "switch: every task spread over all experts); ECG-MoE only")
    p.add_argument("--balance-weight", type=float, default=None,
                   help="weight of that loss (default: the config's, 0.05)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def describe_provenance(prov: dict[str, dict[str, int]]) -> str:
    """One line per task: 'arrhythmia: real ECGs (cinc2017 15000, mitdb 4000 windows)'."""
    from edge_ecg.data.provenance import provenance_kind

    words = {"real": "real ECGs", "synthetic": "synthetic ECGs only",
             "real+synthetic": "real and synthetic ECGs"}
    parts = []
    for task, by in prov.items():
        detail = ", ".join(f"{k} {v}" for k, v in by.items())
        parts.append(f"{task}: {words[provenance_kind(by)]} ({detail} windows)" if by
                     else f"{task}: no labels")
    return "; ".join(parts)


def run(args: argparse.Namespace) -> int:
    import torch

    from edge_ecg.data.dataset import load_dataset
    from edge_ecg.data.provenance import label_provenance
    from edge_ecg.data.tasks import DEFAULT_TASKS
    from edge_ecg.errors import CheckpointError
    from edge_ecg.metrics.tasks import format_metrics
    from edge_ecg.model.checkpoint import save_checkpoint
    from edge_ecg.model.config import ECGMoEConfig
    from edge_ecg.model.moe import format_usage
    from edge_ecg.model.training import (
        TrainSettings,
        dist_setup,
        dist_teardown,
        settings_dict,
        train,
    )
    from edge_ecg.signal.contract import SignalContract

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    rank, world = dist_setup()
    try:
        names = [t for t in args.tasks.split(",") if t] or list(DEFAULT_TASKS.names)
        tasks = DEFAULT_TASKS.select(names)
        contract = SignalContract(fs_hz=args.fs_hz)
        extra = {k: v for k, v in (("balance", args.balance),
                                     ("balance_weight", args.balance_weight)) if v is not None}
        if args.external_checkpoint:
            extra.update(scouts=("patch", "cnn", "dlinear", "fold", "external"),
                         external_checkpoint=args.external_checkpoint)
        cfg = ECGMoEConfig.preset(args.preset, tasks, contract, **extra).baseline(args.variant)
        ds = load_dataset(args.data, contract, tasks, seed=args.seed,
                          progress=not args.no_progress and rank == 0, compact=True)
        provenance = label_provenance(ds)
        train_ds, val_ds = ds.split(args.val_frac, seed=args.seed)
        del ds                  # the split copies: ~80 h of windows must not be held twice
        if len(train_ds) < 2:
            raise CheckpointError(f"data {args.data!r} gives {len(train_ds)} training window(s): "
                                  "too few to train; use more records")
        settings = TrainSettings(epochs=args.epochs, pretrain_epochs=args.pretrain_epochs,
                                 batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                 progress=not args.no_progress)
        res = train(cfg, train_ds, val_ds, settings, rank, world)
        if rank == 0:
            units = {t.name: t.unit for t in tasks}
            print(f"held-out metrics ({len(val_ds)} windows, split by subject):")
            print(format_metrics(res.metrics, units))
            if res.usage:
                print("gate usage (mean gate mass per task, per path, per expert):")
                print(format_usage(res.usage))
            metrics = {
                "held_out": res.metrics, "gate_usage": res.usage,
                "n_params": res.n_params, "n_trainable_lora": res.n_trainable,
                "flops_per_window": res.flops, "data": args.data,
                "n_train": len(train_ds), "n_val": len(val_ds), "world_size": world,
                "loss": {"pretrain": res.history.pretrain_loss,
                         "finetune": res.history.train_loss,
                         "finetune_first_batches": res.history.first_loss},
                "seconds": res.history.seconds,
                "training_data": describe_provenance(provenance),
                # the validation subjects, so that a later stage fitted on the same data (a
                # beat or rhythm stack) can be chosen on patients the network never trained on
                "val_subjects": sorted({str(s) for s in val_ds.subjects.tolist()}),
                "task_training_data": provenance,
            }
            training = {"data": args.data, "preset": args.preset, "variant": args.variant,
                        "world_size": world, **settings_dict(settings)}
            out = save_checkpoint(res.model, args.out, metrics, extra={"training": training})
            print(f"parameters: {res.n_params:,}  FLOPs per window: {res.flops / 1e6:.1f} M  "
                  f"(LoRA trainable: {res.n_trainable:,})")
            print(f"checkpoint written to {out}")
            print(json.dumps({"checkpoint": str(out)}))
            print(DISCLAIMER)
    finally:
        if world > 1:
            dist_teardown()
    return 0
