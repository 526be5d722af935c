"""Every beat's AAMI class, live: which window classifies a beat, and the ectopy it adds up to.

The model's per-beat output (`beat`, `(max_beats, n_classes)` per window) classifies the whole
beats of a window (the slots `whole_beats` keeps). A beat lies in several overlapping windows;
exactly one classifies it, chosen by sample positions only, so any chunking of the same stream
gives the same classes (offline too): the FIRST window, predicted or withheld, that holds the
whole beat (R + `beat_post_s` before its end) and the next beat after it (its RR context:
premature beat, compensatory pause), or, with no next beat, that ends `WAIT_S` after R (less
in a window shorter than 2 x WAIT_S plus a beat). If
that window is withheld, or the beat is not among its slots (more than `max_beats` whole beats:
above ~190 bpm), the beat gets no class, with the reason.

A beat event goes out when both are known: its delineation (the tracker's wave) and its class.
The class comes at most ~one hop plus the window's settling after the next R (about 1-2 s
after R at the default 1-s hop), so beat events of a bundle with a `beat` task come that much
later than without one.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edge_ecg.runtime.events import BeatEvent

WAIT_S = 2.0       # no next beat within 2 s (a pause, asystole): classified without it


class BeatClasses:
    """Per-beat classes from window outputs, and the beat events held until classified.

    State only (no I/O): `claim` then `assign` per processed window, `on_beat_event` per delineated beat,
    `prune` as the stream moves on, `flush` at its end.
    """

    def __init__(self, labels: list[str], beat_pre: int, beat_post: int, fs_hz: float,
                 max_beats: int, window_len: int | None = None) -> None:
        self.labels = [str(x) for x in labels]
        self.pre, self.post = int(beat_pre), int(beat_post)
        self.wait = int(round(WAIT_S * fs_hz))
        if window_len is not None:
            # a short window must still hold the beat when its wait is over
            self.wait = min(self.wait, (int(window_len) - self.pre - self.post) // 2)
        self.max_beats = int(max_beats)
        self._class: dict[int, dict] = {}        # model-clock R -> {"label", "prob"} or reason
        self._held: dict[int, BeatEvent] = {}    # model-clock R -> event waiting for a class
        self._done: set[int] = set()             # beats already classified (or refused)
        self.counts = {lb: 0 for lb in self.labels}
        self.unclassified = 0

    # --- windows ----------------------------------------------------------------------------
    def due(self, beats: np.ndarray, start: int, end: int) -> np.ndarray:
        """Which of a window's beats (model clock, sorted) this window classifies."""
        return np.array(self._due(np.asarray(beats, dtype=np.int64).tolist(), end), dtype=bool)

    def _due(self, b: list[int], end: int) -> list[bool]:
        """`due` over a window's dozen beats as Python ints (one pass, no numpy calls)."""
        post, wait, done, n = self.post, self.wait, self._done, len(b)
        # whole by the window's end, and ready (the next beat seen, or waited long enough);
        # the first window to satisfy both (windows come in order, none skipped)
        return [r + post <= end and ((i + 1 < n and b[i + 1] < end) or r + wait <= end)
                and r not in done for i, r in enumerate(b)]

    def claim(self, beats: np.ndarray, start: int, end: int) -> list[int]:
        """The beats (model clock) this window classifies, marked so no later window does:
        called for every window in stream order, before its outputs are known."""
        b = np.asarray(beats, dtype=np.int64).tolist()
        claimed = [r for r, d in zip(b, self._due(b, end)) if d]
        self._done.update(claimed)
        return claimed

    def slots(self, beats: np.ndarray, start: int, end: int) -> np.ndarray:
        """The window's whole beats in slot order (as `whole_beats` keeps them)."""
        b = np.asarray(beats, dtype=np.int64)
        return b[(b - self.pre >= start) & (b + self.post <= end)][: self.max_beats]

    def labels_of(self, probs: np.ndarray, n: int) -> list[str]:
        """The classes of a window's first `n` slots."""
        return [self.labels[k] for k in np.argmax(np.asarray(probs)[:n], axis=-1).tolist()]

    def assign(self, claimed: list[int], beats: np.ndarray, start: int, end: int,
               probs: np.ndarray | None, reason: str | None = None,
               continued: dict[int, str] | None = None,
               svt: dict[int, str] | None = None) -> list:
        """Classes of the `claimed` beats from the window's per-slot `probs` `(M, C)` (None:
        the window was withheld, `reason` says why); `continued`: beat -> the class the beat
        stack gave the beats the run continuation called V; `svt`: the same for the beats a
        supraventricular tachycardia episode called S. Returns the held beat events now
        complete."""
        if not claimed:
            return []
        slot = {int(r): j for j, r in enumerate(self.slots(beats, start, end).tolist())}
        out = []
        for r in claimed:
            j = slot.get(r)
            c: dict                # {"label", "prob"} or {"reason"}
            if probs is None:
                c = {"reason": reason or "window withheld"}
            elif r - self.pre < start:
                c = {"reason": "the beat starts before the stream"}
            elif j is None or j >= probs.shape[0]:
                c = {"reason": "beyond the model's beat slots (rate above ~190 bpm)"}
            else:
                p = probs[j]
                k = int(np.argmax(p))
                c = {"label": self.labels[k], "prob": round(float(p[k]), 4)}
                if continued and r in continued:
                    c["from"] = continued[r]
                if svt and r in svt:
                    c["svt_from"] = svt[r]
            self._class[r] = c
            if "label" in c:
                self.counts[c["label"]] += 1
            else:
                self.unclassified += 1
            ev = self._held.pop(r, None)
            if ev is not None:
                out.append(self._complete(ev, r))
        return out

    # --- beat events ------------------------------------------------------------------------
    def on_beat_event(self, r: int, event) -> list:
        """A delineated beat's event: out at once if its class is known, else held."""
        if r in self._class:
            return [self._complete(event, r)]
        self._held[r] = event
        return []

    def _complete(self, event, r: int):
        c = self._class.pop(r)
        return replace(event, beat_class=c.get("label"), beat_prob=c.get("prob"),
                       beat_class_reason=c.get("reason"), run_continued_from=c.get("from"),
                       svt_from=c.get("svt_from"))

    def take(self, r: int) -> dict | None:
        """The class of beat `r` (`{"label", "prob"}` or `{"reason"}`), removed; None if not
        decided (offline use, where no beat events wait)."""
        return self._class.pop(r, None)

    def prune(self, keep_from: int) -> None:
        """Forget classes of beats before `keep_from` that never got an event (beats dropped
        on a gap's fill)."""
        for r in [r for r in self._class if r < keep_from]:
            del self._class[r]
        self._done = {r for r in self._done if r >= keep_from}

    def flush(self, reason: str = "stream ended before the beat was classified") -> list:
        """The held events, unclassified, at the end of the stream."""
        out = [replace(ev, beat_class=None, beat_prob=None, beat_class_reason=reason)
               for _, ev in sorted(self._held.items())]
        self.unclassified += len(out)
        self._held.clear()
        return out

    def burden(self) -> dict:
        """The stream's ectopy so far: beats per class, their share of the classified beats."""
        n = sum(self.counts.values())
        return {"classified": n, "unclassified": self.unclassified,
                "counts": dict(self.counts),
                "burden": {lb: (round(c / n, 4) if n else None) for lb, c in self.counts.items()
                           if lb != "N"}}


def window_ectopy(classes: list[str]) -> dict:
    """What a monitor reads off one window's beat classes (in time order): beats per class, the
    longest run of V and of S beats, and ventricular bigeminy (N-V alternating, >= 3 cycles)
    and trigeminy (N-N-V, >= 3 cycles)."""
    counts: dict[str, int] = {}
    for c in classes:
        counts[c] = counts.get(c, 0) + 1
    runs = {"V": 0, "S": 0}
    cur, n = None, 0
    for c in classes:
        n = n + 1 if c == cur else 1
        cur = c
        if c in runs:
            runs[c] = max(runs[c], n)
    seq = "".join("V" if c == "V" else "N" if c == "N" else "x" for c in classes)
    return {"counts": counts, "longest_run": runs,
            "bigeminy": "NVNVNV" in seq, "trigeminy": "NNVNNVNNV" in seq}


__all__ = ["WAIT_S", "BeatClasses", "window_ectopy"]
