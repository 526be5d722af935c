"""Task definitions (names, kinds, units, class labels), read from `tasks.toml`."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:      # Python 3.10: the same parser as the `tomli` package
    import tomli as tomllib

from edge_ecg.errors import RecordError

# `beat`: a class per beat (the window's beat slots) rather than per window; labels as multiclass.
KINDS = ("regression", "binary", "multiclass", "beat")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str                        # regression | binary | multiclass | beat
    metric: str                      # mae | f1 | macro_f1
    label_field: str
    unit: str = ""
    labels: tuple[str, ...] = ()
    missing: float | None = None     # label value that means "not measured"
    scale: float = 1.0               # regression targets are divided by this in training

    @property
    def n_outputs(self) -> int:
        return len(self.labels) if self.kind in ("multiclass", "beat") else 1

    @property
    def per_beat(self) -> bool:
        """A label and an output per beat slot, `(N, max_beats)`, not per window."""
        return self.kind == "beat"

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["labels"] = list(self.labels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TaskSpec":
        d = dict(d)
        d["labels"] = tuple(d.get("labels", ()))
        if d.get("kind") not in KINDS:
            raise RecordError(f"task {d.get('name')!r}: kind must be one of {KINDS}")
        if d["kind"] in ("multiclass", "beat") and len(d["labels"]) < 2:
            raise RecordError(f"task {d['name']!r}: a multiclass task needs at least 2 labels")
        return cls(**d)


@dataclass(frozen=True)
class TaskSet:
    tasks: tuple[TaskSpec, ...] = field(default_factory=tuple)

    def __iter__(self):
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def __getitem__(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"unknown task {name!r}; known: {', '.join(self.names)}")

    def select(self, names: list[str] | tuple[str, ...]) -> "TaskSet":
        unknown = [n for n in names if n not in self.names]
        if unknown:
            raise RecordError(f"unknown task(s) {unknown}; known: {', '.join(self.names)}")
        return TaskSet(tuple(self[n] for n in names))


def load_tasks(path: str | Path | None = None) -> TaskSet:
    """The task set from a TOML file (default: the packaged `tasks.toml`)."""
    if path is None:
        text = resources.files("edge_ecg.data").joinpath("tasks.toml").read_text()
        where = "edge_ecg/data/tasks.toml"
    else:
        where = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise RecordError(f"cannot read task file {where}: {exc}") from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecordError(f"{where}: not valid TOML: {exc}") from exc
    return TaskSet(tuple(TaskSpec.from_dict(t) for t in doc.get("task", [])))


DEFAULT_TASKS = load_tasks()
