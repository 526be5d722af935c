"""Device and ward commands start numpy's BLAS with one thread (edge_ecg.runtime.blas_threads):
its pool's idle workers would spin on the other cores of a bedside board."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from edge_ecg.runtime.blas_threads import VARIABLES, one_thread_per_process
from tests.test_cli_logs import _one_unnamed_channel

POOLS = ("from threadpoolctl import threadpool_info\n"
         "pools = [(p['internal_api'], p['num_threads']) for p in threadpool_info()]\n")


def _run(code: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (*VARIABLES, "GOTO_NUM_THREADS")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=180, cwd=os.getcwd())
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_edge_ecg_stream_runs_numpy_with_one_blas_thread(tmp_path):
    pytest.importorskip("threadpoolctl")
    rec = _one_unnamed_channel(tmp_path)
    got = _run("import json\nfrom edge_ecg.cli import main\n"
               f"rc = main(['stream', '--source', 'record:{rec}?speed=max', "
               f"'--output', 'jsonl:{tmp_path / 'e.jsonl'}'])\n"
               + POOLS + "print(json.dumps({'rc': rc, 'pools': pools}))")
    assert got["rc"] == 0 and got["pools"]
    assert all(n == 1 for _, n in got["pools"]), got["pools"]
    if (os.cpu_count() or 1) > 1:
        # without it, the same numpy starts a pool as wide as the machine: the test can fail
        plain = _run("import json, numpy\n" + POOLS + "print(json.dumps({'pools': pools}))")
        assert max(n for _, n in plain["pools"]) > 1


def test_called_after_numpy_it_says_it_is_too_late(monkeypatch):
    for k in VARIABLES:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "4")      # what the environment sets stays
    assert "numpy" in sys.modules
    assert one_thread_per_process() is False
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1" and os.environ["MKL_NUM_THREADS"] == "4"
