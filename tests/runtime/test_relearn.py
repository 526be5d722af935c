"""A monitor's relearn key on the stream (`Pipeline.relearn`, SIGUSR1 on `edge-ecg stream`):
the patient's beat templates are forgotten before the next chunk, a `status` event says so,
and the stream learns them again from the beats that follow."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from edge_ecg.runtime.bundle import DEFAULT_BUNDLE
from edge_ecg.signal.patient_context import LEARN_BEATS


class _Recorder:
    """A sink that keeps every event and presses relearn at the second prediction."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.pipe = None
        self.before: tuple[int, int] | None = None

    def emit(self, event) -> None:
        ev = event.to_json()
        self.events.append(ev)
        if ev["type"] == "prediction" and sum(e["type"] == "prediction"
                                              for e in self.events) == 2:
            ctx = self.pipe.processor.context
            self.before = (ctx.n_clusters, ctx.learn_left)
            self.pipe.relearn()

    def close(self) -> None:
        pass


def test_relearn_forgets_the_templates_says_so_and_learns_again():
    from edge_ecg.cli.stream import build_spec
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.pipeline import Pipeline
    from edge_ecg.runtime.sources import open_source

    backend = open_backend(str(DEFAULT_BUNDLE))
    sink = _Recorder()
    pipe = Pipeline(open_source(build_spec("synth:sinus_rhythm?seconds=30&seed=4", "max")),
                    backend, [sink])
    sink.pipe = pipe
    try:
        pipe.run(handle_signals=False)
    finally:
        backend.close()
    assert sink.before is not None and sink.before[0] >= 1 and sink.before[1] <= 0
    kinds = [(e["type"], e.get("state")) for e in sink.events]
    at = kinds.index(("status", "relearn"))
    rel = sink.events[at]
    assert rel["info"]["learning_beats"] == LEARN_BEATS
    # pressed at the second prediction, done before the next chunk (one chunk may carry
    # several predictions)
    assert sum(k == ("prediction", None) for k in kinds[:at]) >= 2
    assert any(k == ("beat", None) for k in kinds[at:])           # the stream goes on
    ctx = pipe.processor.context
    assert ctx.n_clusters >= 1 and ctx.learn_left <= 0              # and learned again


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="no SIGUSR1 on this platform")
def test_sigusr1_relearns_a_running_stream(tmp_path):
    out = tmp_path / "live.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge_ecg", "stream", "--source",
         "synth:sinus_rhythm?seconds=120&speed=8", "--output", f"jsonl:{out}"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    def until_written(text: str) -> None:
        deadline = time.time() + 60
        while not (out.exists() and text in out.read_text()):
            if time.time() > deadline:
                pytest.fail(f"no {text} within 60 s")
            time.sleep(0.2)

    try:
        until_written('"type":"beat"')            # running, with a beat or two seen
        proc.send_signal(signal.SIGUSR1)
        until_written('"state":"relearn"')
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "Traceback" not in err, err
    events = [json.loads(line) for line in out.read_text().splitlines()]
    rel = [e for e in events if e["type"] == "status" and e["state"] == "relearn"]
    assert len(rel) == 1 and rel[0]["info"]["learning_beats"] == LEARN_BEATS
    assert events[-1]["state"] == "stop"


def test_relearn_before_the_first_chunk_forgets_nothing_and_says_so():
    """The ward's worker may take a station's relearn before the bed's first frame."""
    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.stream_processor import StreamProcessor

    be = open_backend(DEFAULT_BUNDLE)
    try:
        ev = StreamProcessor(be).relearned(0, 500.0).to_json()
    finally:
        be.close()
    assert ev["state"] == "relearn" and ev["info"] == {"learning_beats": 0,
                                                       "note": "no beat yet: nothing to forget"}
