"""The rhythm classes of the arrhythmia task and each database's mapping onto them.

Read from `rhythms.toml` (data, not code). Each `*_class` function maps one database's native
label to a class name, returns None where the database says nothing about the rhythm (the label
is then masked, never guessed), and raises `RecordError` for a label the table does not know, so
a new label is mapped by a person rather than silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

try:
    import tomllib
except ModuleNotFoundError:      # Python 3.10: the same parser as the `tomli` package
    import tomli as tomllib

from edge_ecg.errors import RecordError

WHERE = "edge_ecg/data/rhythms.toml"


@dataclass(frozen=True)
class RhythmTable:
    classes: tuple[str, ...]
    cinc2017: dict[str, str]
    ptbxl: tuple[tuple[str, frozenset[str]], ...]       # (class, SCP codes), in priority order
    ludb: tuple[tuple[str, frozenset[str]], ...]        # (class, rhythm names), priority order
    ludb_ignore: frozenset[str]
    mitdb: dict[str, str]
    synth: dict[str, str]
    enecg_report_labels: tuple[str, ...] = ()
    vf_episode_rhythm: str | None = None    # the [mitdb] note a `[` ... `]` episode is

    def to_dict(self) -> dict:
        """The whole mapping as JSON-ready data (for the model card and manifest)."""
        return {"classes": list(self.classes), "cinc2017": dict(self.cinc2017),
                "ptbxl": [{"class": c, "codes": sorted(k)} for c, k in self.ptbxl],
                "ludb": [{"class": c, "rhythms": sorted(k)} for c, k in self.ludb],
                "mitdb": dict(self.mitdb), "synth": dict(self.synth)}


def parse_table(doc: dict, where: str = WHERE) -> RhythmTable:
    try:
        classes = tuple(doc["classes"])
        table = RhythmTable(
            classes=classes,
            cinc2017=dict(doc["cinc2017"]),
            ptbxl=tuple((e["class"], frozenset(e["codes"])) for e in doc["ptbxl"]),
            ludb=tuple((e["class"], frozenset(r.lower() for r in e["rhythms"]))
                       for e in doc["ludb"]),
            ludb_ignore=frozenset(r.lower() for r in doc.get("ludb_ignore", ())),
            mitdb=dict(doc["mitdb"]),
            synth=dict(doc["synth"]),
            enecg_report_labels=tuple(doc.get("enecg_report_labels", ())),
            vf_episode_rhythm=doc.get("vf_episode_rhythm"),
        )
    except (KeyError, TypeError) as exc:
        raise RecordError(f"{where}: missing or malformed entry {exc}") from None
    used = (list(table.cinc2017.values()) + [c for c, _ in table.ptbxl]
            + [c for c, _ in table.ludb] + list(table.mitdb.values()) + list(table.synth.values()))
    if table.vf_episode_rhythm is not None and table.vf_episode_rhythm not in table.mitdb:
        raise RecordError(f"{where}: vf_episode_rhythm {table.vf_episode_rhythm!r} is not a "
                          "[mitdb] rhythm note")
    missing = [n for n in table.enecg_report_labels if n not in table.synth]
    if missing:
        raise RecordError(f"{where}: EnECG report label(s) {missing} have no [synth] class")
    bad = sorted(set(used) - set(classes))
    if bad:
        raise RecordError(f"{where}: class(es) {bad} are not in classes {list(classes)}")
    return table


@lru_cache(maxsize=1)
def rhythm_table() -> RhythmTable:
    text = resources.files("edge_ecg.data").joinpath("rhythms.toml").read_text()
    return parse_table(tomllib.loads(text))


def cinc2017_class(letter: str, where: str) -> str:
    table = rhythm_table()
    key = letter.strip()
    if key not in table.cinc2017:
        raise RecordError(f"{where}: unknown CinC 2017 label {letter!r}; known: "
                          f"{sorted(table.cinc2017)} (map new labels in {WHERE})")
    return table.cinc2017[key]


def scp_class(codes) -> str | None:
    """The class of a PTB-XL record's SCP statements; None without a rhythm statement."""
    for cls, keys in rhythm_table().ptbxl:
        if any(k in codes for k in keys):
            return cls
    return None


def ludb_class(text: str, where: str) -> str | None:
    """The class of LUDB's rhythm field (one rhythm per line); None if empty."""
    table = rhythm_table()
    names = [n.strip().rstrip(".").strip().lower() for n in text.replace(";", "\n").splitlines()]
    names = [n for n in names if n and n not in table.ludb_ignore]
    if not names:
        return None
    known = set().union(*(k for _, k in table.ludb))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise RecordError(f"{where}: unknown LUDB rhythm {unknown[0]!r} (map it in {WHERE})")
    for cls, keys in table.ludb:
        if any(n in keys for n in names):
            return cls
    return None


def mitdb_class(aux: str, where: str) -> str:
    table = rhythm_table()
    if aux not in table.mitdb:
        raise RecordError(f"{where}: unknown MIT-BIH rhythm annotation {aux!r}; known: "
                          f"{sorted(table.mitdb)} (map it in {WHERE})")
    return table.mitdb[aux]


def synth_class(condition: str) -> str:
    table = rhythm_table()
    if condition not in table.synth:
        raise RecordError(f"synthetic condition {condition!r} has no rhythm class in {WHERE}")
    return table.synth[condition]


def enecg_class(value, where: str) -> str | None:
    """The rhythm class of an EnECG `report_label`: an index into the machine report's 15
    labels, one of those labels by name, or a rhythm class name; None if empty."""
    table = rhythm_table()
    if value is None or value == "":
        return None
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        key = value.strip().lower().replace(" ", "_")
        if key in table.classes:
            return key
        if key in table.synth:
            return table.synth[key]
        raise RecordError(f"{where}: report_label {value!r} is neither a rhythm class "
                          f"{list(table.classes)} nor a machine-report label; map it in {WHERE}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise RecordError(f"{where}: report_label {value!r} is not an index or a label") from None
    n = len(table.enecg_report_labels)
    if v != int(v) or not 0 <= v < n:
        raise RecordError(f"{where}: report_label {value!r} must be an index 0..{n - 1} of the "
                          f"machine report's labels ({WHERE})")
    return table.synth[table.enecg_report_labels[int(v)]]
