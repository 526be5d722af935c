"""The single-process reference a ward's events must equal, and the comparison.

`reference_events` plays a source spec through one `StreamProcessor` exactly as the
publisher frames it (same chunks, through the bus codec) on the same batch-invariant backend;
`comparable` strips what legitimately differs between runs (wall-clock latency, the ward's
envelope: worker id, timestamps), so equality is checked on everything else.

A test fixture, not part of the shipped package: the ward tests import it by name (their
folder is on sys.path, as for `station_kit`), bench/ward.py by putting tests/ward there.
"""

from __future__ import annotations

from edge_ecg.ward import frames

VOLATILE = ("latency_ms",)


def comparable(event: dict) -> dict:
    """An event dict without its wall-clock and ward-envelope fields."""
    return {k: v for k, v in event.items() if k not in VOLATILE and k != "ward"}


def source_chunks(spec: str, frame_s: float = frames.DEFAULT_FRAME_S,
                  max_seconds: float | None = None) -> list:
    """The chunks a publisher makes of `spec` (replay kinds), through the bus codec."""
    from edge_ecg.ward.publisher import open_feed

    feed = open_feed(spec, "ref", "ref", frame_s)
    src = feed.source
    src.open()
    out, origin = [], None
    try:
        while True:
            try:
                c = src.read(0.0)
            except EOFError:
                break
            if c is None:
                continue
            origin = c.index if origin is None else origin
            if max_seconds is not None and c.index - origin >= max_seconds * c.fs_hz:
                break
            out.append(frames.decode(frames.encode(c, len(out)))[0])
    finally:
        src.close()
    return out


def reference_events(chunks: list, backend, hop_s: float | None = None) -> list[dict]:
    """Events of one `StreamProcessor` fed `chunks` one by one (no `finish`: a live stream
    has no end), as comparable dicts."""
    from edge_ecg.runtime.stream_processor import StreamProcessor
    from edge_ecg.ward.batching import InvariantBackend

    be = backend if isinstance(backend, InvariantBackend) else InvariantBackend(backend)
    p = StreamProcessor(be, hop_s=hop_s)
    out = []
    for c in chunks:
        out.extend(comparable(e.to_json()) for e in p.feed(c))
    return out


async def stored_events(url: str, unit: str, bed: str, timeout_s: float = 2.0) -> list[dict]:
    """Every event stored for a bed in the EVENTS stream, in stream order."""
    from edge_ecg.ward import bus

    nc = await bus.connect(url, "edge-ecg-audit")
    try:
        js = nc.jetstream()
        subj = bus.events_subject(unit, bed)
        from nats.js.errors import NotFoundError

        try:
            info = await js.stream_info(bus.EVENTS_STREAM, subjects_filter=subj)
        except NotFoundError:       # no EVENTS stream yet: nothing stored
            return []
        # any other failure (a timeout on a loaded machine) is raised, not read as "no events"
        total = int((info.state.subjects or {}).get(subj, 0))
        out: list[dict] = []
        if not total:
            return out
        import json

        sub = await js.subscribe(subj, ordered_consumer=True)
        try:
            while len(out) < total:
                m = await sub.next_msg(timeout=timeout_s)
                out.append(json.loads(m.data))
        finally:
            await sub.unsubscribe()
        return out
    finally:
        await nc.close()
