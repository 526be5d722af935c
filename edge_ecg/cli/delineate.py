"""`edge-ecg delineate --data ludb:DIR`: wave delineation scored against LUDB's annotations.

Each record is delineated as a stream would (detector R peaks, then P/QRS/T per beat) and
every boundary is matched to the cardiologists' marks within +/-150 ms; per boundary the
sensitivity, positive predictivity and the mean and SD of the error (ms) are reported, with
the CSE 2-sigma tolerances beside. Without `--lead`, all 12 leads are delineated together and
scored against the consensus of the 12 leads' marks; `--lead NAME` delineates that lead
alone against its own marks; `--lead all` does so for every lead and pools.
"""

from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, metavar="ludb:DIR",
                        help="a folder in LUDB's layout (records NAME.hea with per-lead "
                             "annotations NAME.i ... NAME.v6, here or in DIR/data)")
    parser.add_argument("--lead", metavar="NAME", default=None,
                        help="delineate one lead alone (i, ii, ..., v6) or 'all' (each lead "
                             "alone, pooled); default: the 12 leads combined, scored against "
                             "the consensus of their marks")
    parser.add_argument("--records", metavar="SEL", default=None,
                        help="'odd' or 'even' record numbers only, or a comma list of names")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def select_records(records, sel: str | None):
    """Records by `sel`: None = all, 'odd'/'even' by record number, or 'NAME,NAME'."""
    if sel is None:
        return list(records)
    if sel in ("odd", "even"):
        want = 1 if sel == "odd" else 0
        return [r for r in records if r.name.isdigit() and int(r.name) % 2 == want]
    names = {s.strip() for s in sel.split(",") if s.strip()}
    return [r for r in records if r.name in names]


def run(args: argparse.Namespace) -> int:
    import time

    from edge_ecg.data.ludb_waves import (
        BOUNDARIES,
        CSE_2SD_MS,
        LEADS,
        list_records,
        pool,
        score_ludb_record,
    )
    from edge_ecg.errors import RecordError

    kind, sep, folder = args.data.partition(":")
    if kind != "ludb" or not sep or not folder:
        raise RecordError(f"--data {args.data!r} not understood: use ludb:DIR")
    if args.lead is not None and args.lead.lower() not in (*LEADS, "all"):
        raise RecordError(f"--lead {args.lead!r}: use one of {', '.join(LEADS)} or all")
    records = select_records(list_records(folder), args.records)
    if not records:
        raise RecordError(f"{folder}: no records match --records {args.records!r}")
    t0 = time.perf_counter()
    scores = pool([score_ludb_record(r, args.lead) for r in records])
    wall = time.perf_counter() - t0
    out = {"data": folder, "records": len(records),
           "lead": args.lead or "combined (12 leads) vs consensus", "match_ms": 150.0,
           "wall_s": wall, "boundaries": {b: scores[b].to_dict() for b in BOUNDARIES}}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"LUDB {folder}: {len(records)} records, lead {out['lead']}, match +/-150 ms, "
          f"{wall:.1f} s")
    print(f"{'boundary':9s} {'Se':>7s} {'+P':>7s} {'mean ms':>8s} {'SD ms':>6s} {'CSE 2SD':>8s}")
    for b in BOUNDARIES:
        s = scores[b]
        cse = CSE_2SD_MS.get(b)
        print(f"{b:9s} {s.sensitivity:7.4f} {s.ppv:7.4f} {s.mean_ms:8.1f} {s.sd_ms:6.1f} "
              f"{'' if cse is None else f'{cse:8.1f}'}")
    return 0
