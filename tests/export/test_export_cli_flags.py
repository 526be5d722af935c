"""`edge-ecg export`'s routing and int8 switches reach the export request and the command line
the report records; left unset, the stage's defaults stand."""

import argparse

import pytest

import export.stage
from edge_ecg.cli import export as cli
from export.request import ExportRequest


class Captured(Exception):
    pass


def request_for(monkeypatch, *argv: str) -> ExportRequest:
    def fake(req):
        raise Captured(req)

    monkeypatch.setattr(export.stage, "export_bundle", fake)
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    args = parser.parse_args(["--checkpoint", "ckpt", "--out", "out", *argv])
    with pytest.raises(Captured) as got:
        cli.run(args)
    return got.value.args[0]


def test_route_heads_and_beat_experts_switches(monkeypatch):
    req = request_for(monkeypatch, "--no-route-heads", "--no-beat-experts-int8")
    assert req.route_heads is False and req.beat_experts_int8 is False
    assert "--no-route-heads" in req.command and "--no-beat-experts-int8" in req.command
    req = request_for(monkeypatch, "--route-heads", "--beat-experts-int8")
    assert req.route_heads is True and req.beat_experts_int8 is True
    assert "--route-heads" in req.command.split()


def test_unset_switches_keep_the_stage_defaults(monkeypatch):
    req = request_for(monkeypatch)
    assert req.route_heads == ExportRequest.route_heads
    assert req.beat_experts_int8 == ExportRequest.beat_experts_int8
    assert "route-heads" not in req.command and "beat-experts" not in req.command
