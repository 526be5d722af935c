"""`SvtEpisode`: a supraventricular tachycardia that starts abruptly and runs regular is called
S beat by beat for as long as it lasts, not N once it is the patient's current rhythm.

The beat stack judges a beat S by its prematurity against the last 8-10 beats. In a sustained
supraventricular tachycardia the local rhythm is the tachycardia's own, so after its first
beats every beat comes "on time" and reads N (SVDB 865: 1 723 of its 1 816 S beats called N
out of fold, an incessant tachycardia at RR ~420-460 ms against sinus ~710 ms). EC57 labels
every beat of the run S. A bedside algorithm keeps the patient's sinus rate as the reference
while a tachycardia that began abruptly lasts; this is that rule, on the RR intervals and the
classes the stream already has:

    the reference is the median of the last `ref_beats` RR intervals between two beats called
    N, outside any episode, that end before the stretch judged. An episode starts at a beat
    when the `min_beats` beats up to it, one after another, are none of them V, F or Q, each
    came at RR <= `ratio` x the reference, and their RR lie within `regular` of their median
    (a tachycardia, not atrial fibrillation, whose RR scatter). While it lasts a beat called
    N is called S. It ends at a beat that is not V, F or Q and does not follow one (a pause
    after a PVC does not end it) when its RR > (`ratio` + `end_margin`) x the reference (the
    rate is back), or when the last `min_beats` such intervals scatter beyond 2 x `regular`
    of their median (the rhythm turned irregular: an S call in atrial fibrillation would hide
    its beats from the AF alarm; the reference then keeps the sinus rate, taking no interval
    as fast as the episode's, until the rate is back); and at a break in the beats or a new
    context epoch.

Sinus tachycardia ramps up, and a 16-interval reference follows a ramp of up to ~3 % shorter
RR a beat; >= 3.5 % a beat for ~10 beats starts an episode (docs/runtime.md). It never touches
V, F or Q, so the ventricular figures and alarms cannot change; atrial flutter conducted 2:1
is regular too and would be called S (EC57 labels flutter's beats N).

Chosen on the training folds only (BENCHMARKS.md "2026-12-08"; the grid, replayed on the
streamed classes: `python bench/stack_ideas.py svt --oof 1=B1 ... --oof 4=B4`). Through the
runtime out of fold (`python bench/vt_escalation.py --oof 1=B1' ...`, Bk' a copy of Bk with it
on), pooled over training folds 1-4: SVDB S Se / +P 0.489 / 0.379 -> 0.781 / 0.491 (865: 1 748
beats newly S; 800: 156, a sinus speed-up, false), MIT-BIH S 0.401 / 0.131 and every V figure
unchanged; in the replay, none of the 3 833 beats inside MIT-BIH's reference AF and flutter
called S. Alarms: SVDB's "frequent ectopy" alarm 172 -> 170 onsets, every other the same. The
state is a few numbers and three short lists that change only with the beats classified, in
order, so any chunking gives the same classes and a ward snapshot holds it. It is the
`svt_episode` field of the bundle's `beat_stack.json`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_NOT_SUPRA = ("V", "F", "Q")        # a beat of these classes neither starts nor ends an episode


@dataclass(frozen=True)
class SvtConfig:
    """The setting a bundle's `beat_stack.json` carries (`svt_episode`)."""

    min_beats: int = 8          # beats in a row, fast and regular, that start an episode
    ratio: float = 0.75         # ... each at RR <= ratio x the reference
    regular: float = 0.10       # ... their RR within this share of their median
    end_margin: float = 0.05    # it ends at RR > (ratio + end_margin) x the reference
    ref_beats: int = 16         # N-N RR intervals whose median is the reference

    @staticmethod
    def parse(doc, where: str) -> SvtConfig:
        """From a bundle's JSON object, every field checked (a bundle is untrusted data)."""
        from edge_ecg.runtime.bundle import checked_setting

        return SvtConfig(**checked_setting(
            doc, "svt_episode", SvtConfig(),
            {"min_beats": (2, 64, True), "ratio": (0.3, 0.95, False),
             "regular": (0.0, 0.5, False), "end_margin": (0.0, 0.5, False),
             "ref_beats": (4, 64, True)}, where))

    def to_dict(self) -> dict:
        return {"min_beats": self.min_beats, "ratio": self.ratio, "regular": self.regular,
                "end_margin": self.end_margin, "ref_beats": self.ref_beats}


class SvtEpisode:
    """`apply(epoch, r, pre_rr_ms, p)` per classified beat, in stream order: its
    probabilities, with N and S swapped where an episode calls the beat S."""

    def __init__(self, cfg: SvtConfig, fs_hz: float, labels) -> None:
        self.cfg = cfg
        self.fs_hz = float(fs_hz)
        labels = list(labels)
        self.n_cls, self.s_cls = labels.index("N"), labels.index("S")
        self.not_supra = [labels.index(c) for c in _NOT_SUPRA if c in labels]
        self.epoch: int | None = None
        self.last_r: int | None = None      # model clock of the last beat classified
        self.last_cls = -1                  # its class (as the stack gave it)
        self.window: list[list[float]] = []  # the last beats in a row: [RR ms, N-N RR or 0]
        self.nn: list[float] = []           # N-N RR intervals before the window (ms)
        self.ref = 0.0                      # the episode's reference RR (ms); 0: none
        self.recent: list[float] = []       # its last intervals between non-V beats (ms)
        self.held = 0.0                     # the reference of an episode ended irregular
        self.episodes = 0                   # episodes started (the stream's count)
        self.relabelled = 0                 # beats called S by an episode

    def _reset(self, epoch: int | None) -> None:
        self.epoch, self.last_r, self.last_cls = epoch, None, -1
        self.window, self.nn, self.ref, self.recent, self.held = [], [], 0.0, [], 0.0

    def _follows(self, r: int, pre_rr_ms: float) -> bool:
        """Whether beat `r` is the next beat after the last one classified (its RR before is
        the distance between them, within one model sample)."""
        if self.last_r is None or pre_rr_ms <= 0:
            return False
        return abs((r - self.last_r) - pre_rr_ms * self.fs_hz / 1000.0) <= 1.0

    def _starts(self) -> bool:
        """Whether the window's `min_beats` beats start an episode (self.ref set if so)."""
        c = self.cfg
        if len(self.window) < c.min_beats or len(self.nn) < 4:
            return False
        rr = [w[0] for w in self.window[-c.min_beats:]]
        nn = self.nn[-c.ref_beats:]
        # every beat, so the cheap test first: the reference (a median) is at most their max
        if max(rr) > c.ratio * max(nn):
            return False
        ref, med = _median(nn), _median(rr)
        if max(rr) > c.ratio * ref or any(abs(x - med) > c.regular * med for x in rr):
            return False
        self.ref = ref
        return True

    def apply(self, epoch: int, r: int, pre_rr_ms: float, p: np.ndarray) -> np.ndarray:
        if epoch != self.epoch:
            self._reset(int(epoch))
        k = int(np.argmax(p))
        bad = k in self.not_supra
        if not self._follows(int(r), float(pre_rr_ms)):
            # a break in the beats: what came before says nothing of this RR
            self._flush()
            self.ref, self.recent, self.held = 0.0, [], 0.0
            rr, nn_rr = 0.0, 0.0
        else:
            rr = float(pre_rr_ms)
            nn_rr = rr if (k == self.n_cls and self.last_cls == self.n_cls) else 0.0
        prev_bad = self.last_cls in self.not_supra
        self.last_r, self.last_cls = int(r), k
        out = p
        if self.held > 0 and not bad and not prev_bad and rr > (
                self.cfg.ratio + self.cfg.end_margin) * self.held:
            self.held = 0.0                                 # the rate is back
        if self.ref > 0:                                    # in an episode
            if not bad and not prev_bad and self._ends(rr):
                # ended by irregularity, not by the rate: the tachycardia's intervals stay
                # out of the reference until the rate is back
                self.held = self.ref if rr <= (self.cfg.ratio + self.cfg.end_margin) \
                    * self.ref else 0.0
                self.ref, self.recent = 0.0, []
            else:
                return self._called_s(p, k)
        if rr <= 0 or bad:
            # no stretch goes through this beat: the ones before it are history now
            self._flush()
            self._push_nn(nn_rr)
            return out
        self.window.append([rr, nn_rr])
        if len(self.window) > self.cfg.min_beats:
            # the oldest beat leaves the stretch judged: its N-N RR joins the reference
            self._push_nn(self.window.pop(0)[1])
        if self._starts():
            self.episodes += 1
            self.recent = [w[0] for w in self.window[-self.cfg.min_beats:]]
            self.window = []        # the tachycardia's own beats never join the reference
            return self._called_s(p, k)
        return out

    def _ends(self, rr: float) -> bool:
        """Whether a beat (neither it nor the one before ventricular) at RR `rr` ends the
        episode: the rate is back, or the last `min_beats` such intervals scatter more than
        twice `regular` about their median (the rhythm became irregular: atrial
        fibrillation is not a tachycardia episode, and an S call there would hide its beats
        from the AF alarm)."""
        c = self.cfg
        if rr > (c.ratio + c.end_margin) * self.ref:
            return True
        self.recent.append(rr)
        del self.recent[: -c.min_beats]
        if len(self.recent) < c.min_beats:
            return False
        med = _median(self.recent)
        return any(abs(x - med) > 2.0 * c.regular * med for x in self.recent)

    def _flush(self) -> None:
        """The stretch's N-N intervals join the reference (they end before any stretch
        judged from now on)."""
        for w in self.window:
            self._push_nn(w[1])
        self.window = []

    def _push_nn(self, nn_rr: float) -> None:
        if nn_rr > 0 and not (self.held > 0 and nn_rr <= self.cfg.ratio * self.held):
            self.nn.append(nn_rr)
            del self.nn[: -self.cfg.ref_beats]

    def _called_s(self, p: np.ndarray, k: int) -> np.ndarray:
        if k != self.n_cls:
            return p
        out = np.array(p, copy=True)
        out[self.s_cls], out[k] = p[k], p[self.s_cls]
        self.relabelled += 1
        return out


def _median(xs: list[float]) -> float:
    """The median of a short list, as numpy's (the mean of the two middle values of an even
    count), without numpy's per-call overhead (this runs at every beat)."""
    v = sorted(xs)
    n = len(v)
    return float(v[n // 2]) if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2.0


def svt_classes(beats, fs_hz: float, classes, cfg: SvtConfig | None = None) -> list:
    """Offline: the classes of one context epoch's beats (sample indices `beats`, classes
    `classes`, None for a beat with no class) with the episodes' S calls, as the stream makes
    them. A beat with no class is not fed, so the next one does not follow (as in the stream,
    where an unclassified beat is never applied)."""
    labels = ["N", "S", "V", "F", "Q"]
    ep = SvtEpisode(cfg or SvtConfig(), fs_hz, labels)
    out = list(classes)
    prev = None
    for i, (b, c) in enumerate(zip(beats, classes)):
        pre = (b - prev) * 1000.0 / fs_hz if prev is not None else 0.0
        prev = b
        if c not in labels:
            continue
        p = np.eye(len(labels))[labels.index(c)]
        out[i] = labels[int(np.argmax(ep.apply(0, int(b), pre, p)))]
    return out


__all__ = ["SvtConfig", "SvtEpisode", "svt_classes"]
