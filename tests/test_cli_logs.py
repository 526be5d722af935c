"""The CLI sends the library's module loggers (edge_ecg.*, firmware_bridge.*) to stderr, as
text or JSON lines (`--log-json`, edge_ecg.ward.logs), for the length of a command; library
code only logs and never configures a handler."""

from __future__ import annotations

import io
import json
import logging

import numpy as np


def _one_unnamed_channel(tmp_path) -> str:
    """A 12-s WFDB record whose only channel is called "ECG" (no lead named)."""
    import wfdb

    fs = 360
    t = np.arange(12 * fs) / fs
    x = 0.05 * np.sin(2 * np.pi * 1.2 * t) + np.where(t % 0.8 < 0.02, 1.0, 0.0)
    wfdb.wrsamp("one", fs=fs, units=["mV"], sig_name=["ECG"], p_signal=x[:, None], fmt=["16"],
                write_dir=str(tmp_path))
    return str(tmp_path / "one")


def test_a_lead_taken_as_ii_is_a_json_log_line_on_stderr(tmp_path, capsys):
    from edge_ecg.cli import main

    out = tmp_path / "events.jsonl"
    rc = main(["stream", "--source", f"record:{_one_unnamed_channel(tmp_path)}?speed=max",
               "--output", f"jsonl:{out}", "--log-json"])
    assert rc == 0
    logs = []
    for line in capsys.readouterr().err.splitlines():
        if line.startswith("{"):
            logs.append(json.loads(line))
    said = [x for x in logs if x["logger"] == "edge_ecg.signal.leads"]
    assert len(said) == 1 and said[0]["level"] == "warning"
    assert "channel 'ECG' names no ECG lead; taking it as lead II" in said[0]["msg"]
    assert out.read_text().count('"type":"beat"') > 5               # and it streamed as II
    lg = logging.getLogger("edge_ecg")      # the command's handler is gone with it
    assert lg.propagate and not [h for h in lg.handlers if getattr(h, "ward", False)]


def test_configured_logs_text_lines_at_the_level_asked_and_restores():
    from edge_ecg.ward import logs

    buf = io.StringIO()
    fb = logging.getLogger("firmware_bridge")
    before = (fb.propagate, fb.level, list(fb.handlers))
    with logs.configured(json_lines=False, level="WARNING", stream=buf):
        logging.getLogger("firmware_bridge.decoder").warning("frame sequence went back")
        logging.getLogger("firmware_bridge.decoder").info("not shown")
    assert (fb.propagate, fb.level, list(fb.handlers)) == before
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(" WARNING firmware_bridge.decoder: frame sequence went back")
