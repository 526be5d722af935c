"""`ECGMoEConfig`: every size and switch of the model, with presets (no torch here).

The config travels in each checkpoint's `config.json` with the signal contract and the task
specs, so a checkpoint is self-describing. Unknown fields are refused (a config from a newer
or tampered writer must not be half-read).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from edge_ecg.data.tasks import DEFAULT_TASKS, TaskSet, TaskSpec
from edge_ecg.errors import CheckpointError, SignalError
from edge_ecg.signal.contract import SignalContract

SCOUTS = ("patch", "cnn", "dlinear", "fold", "external")
MORPHOLOGY_EXPERTS = ("beat_cnn", "beat_dilated", "beat_deviation", "beat_mlp")
RHYTHM_EXPERTS = ("rr_mlp", "rr_conv", "rr_attention", "period_mlp")
PATHS = ("scout", "morphology", "rhythm")
VARIANTS = ("moe", "single_scout", "dense_ensemble")
BALANCES = ("switch", "mutual_info")


@dataclass(frozen=True)
class ECGMoEConfig:
    contract: SignalContract = field(default_factory=SignalContract)
    tasks: tuple[TaskSpec, ...] = field(default_factory=lambda: DEFAULT_TASKS.tasks)
    variant: str = "moe"                 # moe | single_scout | dense_ensemble (bench baselines)
    d_model: int = 64                    # width of every expert's output and of the fusion
    scouts: tuple[str, ...] = ("patch", "cnn", "dlinear", "fold")
    morphology_experts: tuple[str, ...] = MORPHOLOGY_EXPERTS
    rhythm_experts: tuple[str, ...] = RHYTHM_EXPERTS
    use_period: bool = True              # False: no period-aware expert (baselines)
    top_k: tuple[int, int, int] = (2, 2, 2)   # experts kept per task, per path (PATHS order)
    # Patch transformer (MOMENT/PatchTST-like): 100 ms patches (50 samples at 500 Hz).
    patch_len: int = 50
    patch_layers: int = 2
    patch_heads: int = 4
    # Dilated residual CNN (ECG-FM-like).
    cnn_channels: int = 32
    cnn_blocks: int = 4
    cnn_stem_stride: int = 5
    # DLinear: moving-average trend / seasonal split at 50 Hz, linear maps over time.
    dlinear_pool: int = 10
    dlinear_kernel: int = 25             # 0.5 s at 50 Hz
    dlinear_basis: int = 32
    # Period fold (TimesNet-like): cycles x points grid resampled from the detected period.
    fold_points: int = 32
    fold_min_period_s: float = 0.3       # 200 bpm: rows = ceil(window / 0.3 s)
    fold_channels: int = 16
    # Period-aware expert.
    beat_channels: int = 24
    beat_pool: int = 5                   # per-beat downsampling of the MLP/decoder path
    morph_beats: int = 16                # beat slots the morphology experts read (10 s at 96
                                         # bpm); the rhythm path reads all RR intervals
    rhythm_hidden: int = 32
    # Period priors: a task's head predicts a residual over one of the period features, given
    # in the task's training units (target / scale). RR interval in ms / 1000 is the detected
    # beats' mean RR in seconds: the period-aware expert measures the rhythm, and the head only
    # learns where that measurement is wrong (missed or extra beats, too few beats). Without it
    # the head re-learns the identity from synthetic data and drifts on real records (MIT-BIH
    # RR MAE 11.2 ms with a learned linear skip vs 2.6 ms for the detector's own mean RR).
    period_priors: dict = field(default_factory=lambda: {"rr_interval": "mean_rr_s"})
    # The heads also read the gates' input summary (per-lead amplitude, spread, slope), like the
    # period features: QRS voltage and T-wave size carry sex, age and potassium, and a linear
    # skip reads them without the experts re-learning an amplitude in a short fine-tuning.
    # Measured with the Switch loss (bench/model.py defaults, tiny, means over seeds 0-2, ECG-MoE
    # without -> with the skip): age MAE 17.2 -> 15.5 y, sex F1 0.54 -> 0.62, arrhythmia macro F1
    # 0.73 -> 0.77.
    head_summary: bool = True
    # The per-beat head also reads each beat judged against the patient's context (`beat_ctx`:
    # prematurity against the running RR averages, QRS against the dominant-beat template;
    # edge_ecg.signal.patient_context), as bedside monitors classify beats.
    beat_context: bool = True
    # Gates, fusion and heads.
    gate_hidden: int = 32
    head_hidden: int = 64
    # External pretrained encoder (scout "external"): architecture name and local weights file.
    external_arch: str = "conv1d"
    external_checkpoint: str = ""
    external_width: int = 32
    # Training knobs stored with the model.
    lora_rank: int = 8
    lora_alpha: int = 16
    lead_dropout: float = 0.5            # probability a training window keeps only 1-3 leads
    # Degraded links (issue 17), so the model learns to predict around what never arrived:
    # the probability a training window loses short stretches of every lead (runs of 1-3
    # validity segments, 40-120 ms, as lost frames of a serial or BLE link; on average 4 % of
    # the window, at most the runtime's 10 % limit in practice), and the probability that each
    # of its leads is off, half of them on average (never all).
    gap_dropout: float = 0.3
    lead_off: float = 0.15
    # Auxiliary routing loss added to the task loss, times `balance_weight` (edge_ecg.model.gate):
    # "switch" spreads each task over all experts (Switch Transformer load balance, per task);
    # "mutual_info" is Mod-Squad's task-expert mutual information: experts used evenly overall,
    # each task on few of them, so the export stage keeps fewer experts per deployment.
    # Measured (edge preset, README training command at 1 thread, seeds 0-2, mean; switch 0.01
    # -> mutual_info 0.05): FLOPs a 1-task deployment keeps 66% -> 37% (rr_interval alone 89%
    # -> 26%), a 2-task one 83% -> 63%, and none of the 15 keeps every expert (4 did); held-out
    # metrics within the seed spread (arrhythmia macro F1 0.892 -> 0.885, potassium F1 0.877
    # -> 0.963, sex F1 0.637 -> 0.634, age MAE 14.86 -> 14.96 y, MIT-BIH RR 3.38 -> 3.57 ms,
    # PVC AUC 0.866 -> 0.866). Weight 0.2 cost arrhythmia F1 on 2 of 3 seeds (mean 0.848).
    balance: str = "mutual_info"
    balance_weight: float = 0.05         # weight of the auxiliary routing loss
    recon_pool: int = 10                 # pretraining target resolution (samples averaged)

    def __post_init__(self) -> None:
        for name in self.scouts:
            if name not in SCOUTS:
                raise CheckpointError(f"config: unknown scout {name!r}; known: {SCOUTS}")
        for name in self.morphology_experts:
            if name not in MORPHOLOGY_EXPERTS:
                raise CheckpointError(f"config: unknown morphology expert {name!r}")
        for name in self.rhythm_experts:
            if name not in RHYTHM_EXPERTS:
                raise CheckpointError(f"config: unknown rhythm expert {name!r}")
        if self.variant not in VARIANTS:
            raise CheckpointError(f"config: variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.balance not in BALANCES:
            raise CheckpointError(
                f"config: balance must be one of {BALANCES} (the gates' auxiliary loss), "
                f"got {self.balance!r}")
        if not self.scouts:
            raise CheckpointError("config: at least one scout is needed")
        if self.use_period and (not self.morphology_experts or not self.rhythm_experts):
            raise CheckpointError("config: the period expert needs morphology and rhythm experts")
        if not self.tasks:
            raise CheckpointError("config: at least one task is needed")
        for task, feature in self.period_priors.items():
            if not isinstance(feature, str) or feature not in self.contract.period_features:
                raise CheckpointError(
                    f"config: period prior of {task!r} must name a period feature "
                    f"{self.contract.period_features}, got {feature!r}")
        if self.contract.window_len % self.patch_len:
            raise CheckpointError(
                f"config: window of {self.contract.window_len} samples is not a multiple of "
                f"patch_len {self.patch_len}")

    # -- derived -------------------------------------------------------------------------
    @property
    def task_set(self) -> TaskSet:
        return TaskSet(tuple(self.tasks))

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def experts(self, path: str) -> tuple[str, ...]:
        return {"scout": self.scouts, "morphology": self.morphology_experts,
                "rhythm": self.rhythm_experts}[path]

    @property
    def paths(self) -> tuple[str, ...]:
        return PATHS if self.use_period else ("scout",)

    def k(self, path: str) -> int:
        return max(1, min(self.top_k[PATHS.index(path)], len(self.experts(path))))

    # -- presets and baselines -----------------------------------------------------------
    @classmethod
    def preset(cls, name: str, tasks: TaskSet | tuple[TaskSpec, ...] = DEFAULT_TASKS,
               contract: SignalContract | None = None, **overrides) -> ECGMoEConfig:
        """`tiny` (tests, < 0.5 M parameters), `edge` (bundled default), `base`."""
        contract = contract or SignalContract()
        tasks = tuple(tasks)
        sizes = {
            "tiny": dict(d_model=16, patch_layers=1, patch_heads=2, cnn_channels=8, cnn_blocks=2,
                         dlinear_basis=8, fold_points=16, fold_channels=4, beat_channels=6,
                         rhythm_hidden=12, gate_hidden=12, head_hidden=16, lora_rank=4,
                         lora_alpha=8, external_width=8),
            # ~1.5 M parameters at ~0.1 GFLOP per window: width sits in layers used few times
            # per window (fusion, heads, DLinear maps), not in the per-token/per-beat convs.
            "edge": dict(d_model=96, patch_len=100, patch_layers=2, dlinear_basis=192,
                         beat_channels=16, fold_points=24, fold_channels=12, rhythm_hidden=64,
                         head_hidden=128, gate_hidden=48, cnn_stem_stride=8),
            "base": dict(d_model=128, patch_layers=4, patch_heads=8, cnn_channels=64,
                         cnn_blocks=6, dlinear_basis=64, fold_points=48, fold_channels=32,
                         beat_channels=48, rhythm_hidden=64, gate_hidden=64, head_hidden=128,
                         lora_rank=16, lora_alpha=32, external_width=64),
        }
        if name not in sizes:
            raise CheckpointError(f"unknown preset {name!r}; choose one of {sorted(sizes)}")
        kw = {**sizes[name]}
        # Sizes counted in samples are set for 500 Hz: scale them with the contract's rate so a
        # patch, the CNN stem and the pretraining targets span the same time at any rate (the
        # bundled model runs at 250 Hz). `tiny`, the test model, keeps its counts: the tests
        # run it at 100 Hz, where they are coarse already and its speed is what matters.
        ratio = contract.fs_hz / 500.0
        if ratio != 1.0 and name != "tiny":
            for key in ("patch_len", "cnn_stem_stride", "dlinear_pool", "recon_pool"):
                v = kw.get(key, cls.__dataclass_fields__[key].default) * ratio
                if v >= 1 and abs(v - round(v)) < 1e-9:
                    kw[key] = int(round(v))
        kw.update(overrides)
        return cls(contract=contract, tasks=tasks, **kw)

    def baseline(self, variant: str) -> ECGMoEConfig:
        """The bench baselines at the same sizes: a single-scout model (the CNN scout alone) or
        an EnECG-style dense ensemble (all scouts, soft gate over all of them, no period expert).
        Their heads read the fused features only: no period features, no input summary
        (bench/model.py --same-head-inputs gives them the summary too)."""
        if variant == "moe":
            return self
        # Baselines keep the Switch loss: a dense soft gate is meant to mix every scout (Switch
        # is constant there), not to be pushed towards one scout per task.
        if variant == "single_scout":
            return replace(self, variant=variant, scouts=("cnn",), use_period=False,
                           head_summary=False, top_k=(1, self.top_k[1], self.top_k[2]),
                           balance="switch", balance_weight=0.01)
        if variant == "dense_ensemble":
            return replace(self, variant=variant, use_period=False, head_summary=False,
                           top_k=(len(self.scouts), self.top_k[1], self.top_k[2]),
                           balance="switch", balance_weight=0.01)
        raise CheckpointError(f"unknown variant {variant!r}; choose one of {VARIANTS}")

    # -- serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["contract"] = self.contract.to_dict()
        d["tasks"] = [t.to_dict() for t in self.tasks]
        for key in ("scouts", "morphology_experts", "rhythm_experts", "top_k"):
            d[key] = list(d[key])
        d["period_priors"] = dict(self.period_priors)
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "config.json") -> ECGMoEConfig:
        if not isinstance(d, dict):
            raise CheckpointError(f"{where}: the model config must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise CheckpointError(
                f"{where}: unknown config field(s) {unknown}; this checkpoint was written by "
                "another edge-ecg version or edited: retrain or fix the file")
        d = dict(d)
        try:
            if "contract" in d:
                d["contract"] = SignalContract.from_dict(d["contract"])
            if "tasks" in d:
                d["tasks"] = tuple(TaskSpec.from_dict(t) for t in d["tasks"])
        except (SignalError, TypeError, KeyError) as exc:
            raise CheckpointError(f"{where}: bad contract or tasks: {exc}") from exc
        except Exception as exc:  # RecordError from TaskSpec
            raise CheckpointError(f"{where}: bad task spec: {exc}") from exc
        for key in ("scouts", "morphology_experts", "rhythm_experts", "top_k"):
            if key in d:
                d[key] = tuple(d[key])
        # A checkpoint written before priors existed trained its heads without them.
        d.setdefault("period_priors", {})
        d.setdefault("head_summary", False)      # likewise for the summary skip
        d.setdefault("beat_context", False)      # and the per-beat patient context
        d.setdefault("balance", "switch")        # and with the Switch balance loss
        d.setdefault("balance_weight", 0.01)
        if not isinstance(d["period_priors"], dict):
            raise CheckpointError(f"{where}: 'period_priors' must be an object {{task: feature}}")
        try:
            return cls(**d)
        except TypeError as exc:
            raise CheckpointError(f"{where}: {exc}") from exc


def config_summary(cfg: ECGMoEConfig) -> dict:
    """A short dict for reports: variant, experts per path and top-k."""
    return {"variant": cfg.variant, "d_model": cfg.d_model,
            **{f"{p}_experts": list(cfg.experts(p)) for p in cfg.paths},
            "top_k": {p: cfg.k(p) for p in cfg.paths}, "tasks": list(cfg.task_names)}


__all__ = ["BALANCES", "MORPHOLOGY_EXPERTS", "PATHS", "RHYTHM_EXPERTS", "SCOUTS", "ECGMoEConfig",
           "config_summary"]
