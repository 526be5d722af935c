"""The stream's start-up imports only what streaming needs (issue 27: ready for the first
chunk in < 0.5 s). Each check runs in a fresh interpreter, since this one has imported
everything the suite touched."""

from __future__ import annotations

import json
import subprocess
import sys

# modules a stream never needs: the ward's asyncio, wfdb's pandas (a record replay pays it to
# read the record), plots, scipy.signal (the filters load scipy's sosfilt kernel alone),
# torch, psutil (profiles only), the other subcommands
NOT_FOR_STREAMING = ("asyncio", "pandas", "wfdb", "matplotlib", "scipy.signal", "torch",
                     "psutil", "edge_ecg.cli.ward", "edge_ecg.cli.train", "edge_ecg.cli.demo")


def _loaded(code: str) -> list[str]:
    probe = (code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))")
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_a_synthetic_stream_imports_nothing_it_does_not_use():
    mods = _loaded("from edge_ecg.cli import main\n"
                   "main(['stream', '--source', 'synth:sinus_rhythm?seconds=11', '--speed', "
                   "'max', '--output', 'jsonl:/dev/null'])")
    assert "edge_ecg.runtime.pipeline" in mods and "onnxruntime" in mods   # it did stream
    assert [m for m in NOT_FOR_STREAMING if m in mods] == []


def test_the_parser_imports_only_the_subcommand_asked_for():
    mods = _loaded("from edge_ecg.cli import build_parser\n"
                   "build_parser(only='stream').parse_args(['stream', '--source', 'synth:x'])")
    cli = [m for m in mods if m.startswith("edge_ecg.cli.")]
    assert "edge_ecg.cli.stream" in cli
    assert set(cli) <= {"edge_ecg.cli.stream", "edge_ecg.cli.bundle", "edge_ecg.cli.formatter"}
    assert "asyncio" not in mods and "numpy" not in mods


def test_help_still_lists_every_command():
    from edge_ecg.cli import COMMANDS

    res = subprocess.run([sys.executable, "-c", "from edge_ecg.cli import main; main()",
                          "--help"], capture_output=True, text=True, check=False)
    assert res.returncode == 0
    for name in COMMANDS:
        assert f"    {name}" in res.stdout
    res = subprocess.run([sys.executable, "-c", "from edge_ecg.cli import main; main()",
                          "stream", "--help"], capture_output=True, text=True, check=False)
    assert res.returncode == 0 and "--source SPEC" in res.stdout


def test_a_serial_source_does_not_load_the_record_replay():
    mods = _loaded("from edge_ecg.runtime.sources import open_source\n"
                   "open_source('serial:/dev/null?baud=921600')")
    assert "firmware_bridge.serial_source" in mods
    assert "edge_ecg.runtime.replay" not in mods and "wfdb" not in mods
