"""The C reference encoder, compiled with the system compiler, round-tripped through Python."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from firmware_bridge.decoder import StreamDecoder
from firmware_bridge.protocol import (
    Command,
    DataFrame,
    DeviceInfo,
    Flag,
    SampleFormat,
    encode_command,
    encode_data,
)

C_DIR = Path(__file__).resolve().parents[2] / "firmware_bridge" / "c"
CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2"]


def _compiler() -> str:
    for cc in ("cc", "gcc", "clang"):
        if shutil.which(cc):
            return cc
    pytest.skip("no C compiler (cc/gcc/clang) on PATH: cannot build the reference encoder")


@pytest.fixture(scope="module")
def encoder_bin(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cenc") / "encoder_demo"
    res = subprocess.run([_compiler(), *CFLAGS, "-o", str(out), str(C_DIR / "main.c"),
                          str(C_DIR / "encoder.c")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out


@pytest.mark.parametrize("fmt,bits", [(SampleFormat.INT16, 16), (SampleFormat.INT24, 24)])
def test_c_encoder_round_trips_through_python_decoder(encoder_bin, fmt, bits):
    rng = np.random.default_rng(bits)
    n_leads, spf = 8, 10
    x = rng.integers(fmt.min_count, fmt.max_count + 1, size=(10 * 27 + 3, n_leads))
    x[0] = fmt.min_count
    x[1] = fmt.max_count
    text = "\n".join(" ".join(map(str, row)) for row in x)
    res = subprocess.run([str(encoder_bin), str(n_leads), str(spf), str(bits), "65530", "500",
                          "200"], input=text.encode(), capture_output=True)
    assert res.returncode == 0, res.stderr.decode()
    dec = StreamDecoder()
    msgs = dec.feed(res.stdout)
    info = msgs[0]
    assert isinstance(info, DeviceInfo)
    assert (info.fs_hz, info.fmt, info.samples_per_frame) == (500.0, fmt, spf)
    assert info.leads == ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
    assert info.gain == (200.0,) * 8
    frames = [m for m in msgs if isinstance(m, DataFrame)]
    assert len(frames) == 28                       # 27 full frames and a final 3-sample one
    assert frames[-1].samples_per_frame == 3
    np.testing.assert_array_equal(np.concatenate([f.samples for f in frames]), x)
    assert [f.seq_unwrapped for f in frames] == list(range(65530, 65530 + 28))
    assert frames[0].flags & Flag.STREAM_START and not frames[1].flags
    assert [f.timestamp_us for f in frames[:3]] == [0, 20_000, 40_000]
    assert dec.crc_errors == dec.lost_frames == dec.discarded_bytes == dec.clock_jumps == 0


@pytest.mark.parametrize("fmt,bits", [(SampleFormat.INT16, 16), (SampleFormat.INT24, 24)])
def test_c_and_python_encoders_write_identical_bytes(encoder_bin, fmt, bits):
    x = np.arange(-12, 12).reshape(8, 3) * 1001
    res = subprocess.run([str(encoder_bin), "3", "8", str(bits), "7", "250"],
                         input=" ".join(map(str, x.reshape(-1))).encode(), capture_output=True)
    assert res.returncode == 0
    py = encode_data(7, 0, x, fmt, flags=int(Flag.STREAM_START))
    assert res.stdout.endswith(py)


def test_c_encoder_refuses_out_of_range_sample(encoder_bin):
    res = subprocess.run([str(encoder_bin), "1", "1", "16"], input=b"40000", capture_output=True)
    assert res.returncode == 1 and b"error -3" in res.stderr


HARNESS = r"""
#include <stdio.h>
#include "encoder.h"
int main(void) {
    static uint8_t buf[256];
    size_t n = fread(buf, 1, sizeof buf, stdin);
    ecg_command_t cmd;
    int rc = ecg_parse_command(buf, n, &cmd);
    uint8_t ack[32];
    if (rc != 0) { printf("rc=%d\n", rc); return 0; }
    printf("cmd=%u token=%u args=%u crc=%08lx\n", cmd.command, cmd.token, (unsigned)cmd.args_len,
           (unsigned long)ecg_crc32(0u, (const uint8_t *)"123456789", 9));
    fwrite(ack, 1, (size_t)ecg_encode_ack(ack, sizeof ack, cmd.command, cmd.token, 0), stderr);
    return 0;
}
"""


def test_c_parses_python_commands_and_acks_back(tmp_path):
    src = tmp_path / "harness.c"
    src.write_text(HARNESS)
    exe = tmp_path / "harness"
    res = subprocess.run([_compiler(), *CFLAGS, "-I", str(C_DIR), "-o", str(exe), str(src),
                          str(C_DIR / "encoder.c")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    msg = encode_command(Command.START, 42)
    out = subprocess.run([str(exe)], input=msg, capture_output=True)
    assert out.stdout.decode().strip() == "cmd=2 token=42 args=0 crc=cbf43926"
    ack = StreamDecoder().feed(out.stderr)[0]
    assert (ack.command, ack.token, int(ack.status)) == (2, 42, 0)
    corrupt = bytearray(msg)
    corrupt[9] ^= 1
    out = subprocess.run([str(exe)], input=bytes(corrupt), capture_output=True)
    assert out.stdout.decode().strip() == "rc=-4"
