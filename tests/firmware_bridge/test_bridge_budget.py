"""Link budget: the table in PROTOCOL.md is the code's, and its headline claims hold."""

from __future__ import annotations

from pathlib import Path

from firmware_bridge import budget
from firmware_bridge.protocol import FRAME_OVERHEAD, SampleFormat

DOC = Path(budget.__file__).with_name("PROTOCOL.md")
LINK = {k.name: k for k in budget.LINKS}


def test_protocol_doc_table_matches_code():
    block = budget.doc_block(DOC.read_text())
    assert block, "PROTOCOL.md lost its budget markers"
    assert block == budget.markdown_table(), (
        "PROTOCOL.md budget table is stale: run python -m firmware_bridge.budget --write")


def test_headline_figures():
    i24, i16 = SampleFormat.INT24, SampleFormat.INT16
    assert budget.raw_bytes_per_s(12, 500, i24) == 18_000            # 12 x 500 x 3 bytes
    assert LINK["UART 115200"].bytes_per_s == 11_520                  # 8N1: 10 bits per byte
    assert not budget.fits(12, 500, i24, LINK["UART 115200"])
    assert not budget.fits(8, 500, i24, LINK["UART 115200"])
    assert budget.fits(8, 500, i16, LINK["UART 115200"])
    assert budget.fits(8, 500, i24, LINK["UART 460800"])
    assert budget.fits(12, 500, i24, LINK["UART 921600"])
    # Framing: 50 frames/s of 21 bytes overhead on top of the samples.
    assert budget.framed_bytes_per_s(8, 500, i24) == 50 * (FRAME_OVERHEAD + 8 * 10 * 3)


def test_table_rows_agree_with_fits():
    for row in budget.rows():
        n, fs, fmt = int(row[0]), int(row[1]), SampleFormat.parse(row[2])
        for link, cell in zip(budget.LINKS, row[5:]):
            assert cell.startswith("yes") == budget.fits(n, fs, fmt, link)
