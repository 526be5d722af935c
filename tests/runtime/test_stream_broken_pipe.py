"""`edge-ecg stream ... | head`: a reader that goes away stops the stream quietly."""

import subprocess
import sys


def test_stream_stops_quietly_when_the_reader_closes_the_pipe():
    cmd = [sys.executable, "-m", "edge_ecg", "stream", "--source",
           "synth:atrial_fibrillation?seconds=30", "--speed", "max"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.read(200)          # the start status event, then we hang up
    proc.stdout.close()
    _, err = proc.communicate(timeout=120)
    assert first.startswith(b'{"type":"status"')
    assert proc.returncode == 141, err.decode()
    assert b"Traceback" not in err, err.decode()
