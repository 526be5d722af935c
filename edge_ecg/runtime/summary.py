"""`Summary`: the counters and latency figures that close a stream run."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


def _burden_line(b: dict) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in b["counts"].items())
    burden = ", ".join(f"{k} {v:.1%}" for k, v in b["burden"].items() if v is not None)
    return (f"beat classes: {counts} ({b['unclassified']} unclassified); ectopy burden "
            f"{burden or 'n/a'}")


@dataclass
class Summary:
    samples: int = 0
    seconds: float = 0.0
    beats: int = 0
    predictions: int = 0
    withheld: int = 0
    withheld_reasons: dict = field(default_factory=dict)
    # predictions made on a degraded window (issue 17): any filled sample or any masked lead;
    # `degraded_kinds` splits them ("filled", "leads_masked"; a window may count in both)
    degraded_predictions: int = 0
    degraded_kinds: dict = field(default_factory=dict)
    beats_in_gaps: int = 0      # beats the detector found on a gap's fill, dropped
    # with a `beat` task: beats per AAMI class, the unclassified, ectopy burden (share of the
    # classified beats per ectopic class); None without one
    beat_classes: dict | None = None
    gaps: int = 0
    gap_samples: int = 0
    invalid_samples: int = 0
    late_samples: int = 0
    overflow_samples: int = 0
    dropped_chunks: int = 0
    dropped_samples: int = 0
    crc_errors: int = 0
    source: dict = field(default_factory=dict)
    latency_ms_p50: float = float("nan")
    latency_ms_p99: float = float("nan")
    inference_ms_p50: float = float("nan")
    inference_ms_p99: float = float("nan")
    wall_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        return [
            f"samples {self.samples} ({self.seconds:.1f} s of signal in {self.wall_s:.1f} s)",
            f"beats {self.beats}, predictions {self.predictions} ({self.degraded_predictions} "
            f"on degraded windows {self.degraded_kinds or ''}".rstrip() + f"), withheld "
            f"{self.withheld} {self.withheld_reasons or ''}".rstrip(),
            *([_burden_line(self.beat_classes)] if self.beat_classes else []),
            (f"gaps {self.gaps} ({self.gap_samples} samples), invalid samples "
             f"{self.invalid_samples}, dropped chunks {self.dropped_chunks}, "
             f"CRC errors {self.crc_errors}"),
            (f"sample-to-prediction latency p50 {self.latency_ms_p50:.2f} ms, p99 "
             f"{self.latency_ms_p99:.2f} ms; inference p50 {self.inference_ms_p50:.2f} ms"),
        ]


__all__ = ["Summary"]
