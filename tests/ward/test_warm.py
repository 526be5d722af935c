"""A worker loads the runtime's code before it claims a bed (`Worker._warm`): after it, a bed's
first feed imports nothing. In a fresh interpreter, since this one has imported it all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import json
import sys
from edge_ecg.runtime.backends import open_backend
from edge_ecg.runtime.bundle import DEFAULT_BUNDLE
from edge_ecg.ward.batching import run_tick
from edge_ecg.ward.worker import Worker

sys.path.insert(0, "tests/ward")
from ward_reference import source_chunks   # the frames a publisher sends, decoded

w = Worker("nats://127.0.0.1:1", open_backend(str(DEFAULT_BUNDLE), threads=1))
if sys.argv[1] == "warm":
    w._warm()
chunks = source_chunks("synth:premature_ventricular_contractions?seconds=12&seed=3")
before = set(sys.modules)
proc = w._fresh_processor()
got = run_tick(w.shared, {"bed": lambda: [e for c in chunks for e in proc.feed(c)]})
assert not isinstance(got["bed"], Exception), got["bed"]
assert len(got["bed"]) > 5, got["bed"]
print(json.dumps(sorted(m for m in set(sys.modules) - before
                        if m.startswith(("edge_ecg", "scipy")))))
"""


def _new_modules(mode: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_after_the_warm_up_a_beds_first_feed_imports_nothing():
    cold = _new_modules("cold")
    assert "edge_ecg.runtime.stream_processor" in cold and "scipy" in cold   # the probe sees it
    assert _new_modules("warm") == []
