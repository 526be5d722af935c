"""Ward benchmark: N simulated beds -> publisher -> K workers -> central station, one run.

    python bench/ward.py                       # ~2.5 min: 24 beds, 40 s per phase
    python bench/ward.py --beds 60 --seconds 120 --phases scale,faults
    python bench/ward.py --security off,on --seconds 30 --warmup 15 --rounds 3   # medians, ~18 min

Beds: 12 leads at 500 Hz each, half real (PTB-XL 500-Hz records of successive patients
played back to back, 10 s each: a load, not a clinical, construct), half synthetic patients
of the generator's conditions. Everything runs on this machine: nats-server (JetStream, file
storage) on a loopback port, the publisher and the station in this process, workers as
`edge-ecg ward worker` processes.

Frames carry 0.5 s of signal (`--frame-s`, the publisher's default); workers tick at most
every 0.25 s (`--tick`), when frames arrive; each bed's state is snapshotted every 10 s of
signal (`--snapshot`, the worker's default; ~0.7 MB a bed, the ward's largest cost outside the
runtime); the buckets are made with the workers' lease TTL (`--lease-ttl`, 2 s). Figures, and
where the CPU goes, in BENCHMARKS.md (Ward). Every frame is a broker message and a processor
call, so frame duration trades CPU a bed against latency (0.1-s frames: ~30 % fewer beds per
core, p99 sample-to-event <= 0.42 s in an earlier round).

Phases:
  scale   the same beds served by 1 worker, then by 2 (fresh broker each): CPU seconds of every
          process (broker, workers, publisher + station; a worker's also split between its
          event loop and its compute thread), beds per core used, frame-to-event
          latency (a frame leaving the publisher -> the event it released at the station) and
          sample-to-event (the same + the frame's duration: from its first sample, a bound)
  faults  2 workers; kill -9 one a third of the way in, restart the broker two thirds in:
          failover time (kill -> the first event of each moved bed from its new worker),
          frames produced = published + dropped + buffered, events stored vs the
          single-process reference of every bed (equal, none lost, none duplicated)

Figures on a shared machine are noisy: CPU seconds are measured per process, not inferred.
Before each phase a machine probe (the single-process runtime over 4 beds, in this process:
ms of CPU a bed-second, `machine_probe_ms_per_bed_s`) says how fast the machine was then;
on this shared 2-core machine one phase's beds per core moved 1.5x with it in a day.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "ward"))     # ward_reference: the tests' reference run
# this process (publisher, station, the machine probe) as the ward roles run: numpy's pools
# one thread (`edge-ecg ward ...` sets it before numpy loads), no idle BLAS thread spinning
from edge_ecg.runtime.blas_threads import one_thread_per_process  # noqa: E402

one_thread_per_process()
import numpy as np  # noqa: E402

from edge_ecg import DISCLAIMER  # noqa: E402
from edge_ecg.ward import event_loop  # noqa: E402
from profiles.machine import this_machine  # noqa: E402

DATA = Path(os.environ.get("EDGE_ECG_DATA", REPO.parent / "shared" / "data"))
SYNTH = ("sinus_rhythm", "atrial_fibrillation", "sinus_bradycardia", "sinus_tachycardia",
         "premature_ventricular_contractions", "af_rapid_ventricular_response")


def _stat_cpu_s(stat: str, children: bool = False) -> float:
    """utime + stime (+ the reaped children's, with `children`) of a /proc stat file, seconds."""
    f = Path(stat).read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in f[11:15 if children else 13]) / os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int, children: bool = True) -> float:
    """utime + stime of a process (and, with `children`, of its children reaped so far),
    seconds (/proc). This process's own figure leaves children out: the broker it restarts
    and the worker it kills are reaped here and counted on their own lines."""
    try:
        return _stat_cpu_s(f"/proc/{pid}/stat", children)
    except (OSError, IndexError):
        return float("nan")


def thread_cpu_s(pid: int) -> dict[int, float]:
    """utime + stime of each thread of a process, seconds (/proc/PID/task)."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            out[int(tid)] = _stat_cpu_s(f"/proc/{pid}/task/{tid}/stat")
        except (OSError, IndexError):
            continue
    return out


def split_threads(pid: int, before: dict[int, float]) -> dict[str, float]:
    """A worker's CPU since `before` (thread_cpu_s): its main thread (the event loop: NATS,
    TLS, leases, publishing) and the rest (the compute thread: decoding, the runtime, event
    envelopes, snapshot dumps)."""
    now = thread_cpu_s(pid)
    d = {t: c - before.get(t, 0.0) for t, c in now.items()}
    main = d.pop(pid, float("nan"))
    return {"event loop": round(main, 2), "compute": round(sum(d.values()), 2)}


def ptbxl_signal(k: int, seconds: float):
    """(adc, gain, baseline, leads) of successive PTB-XL 500-Hz records, `seconds` long."""
    from edge_ecg.data.records import read_record

    recs = sorted((DATA / "ptbxl" / "records500").glob("*/*_hr.hea"))
    need = int(np.ceil(seconds / 10.0))
    if len(recs) < need:
        return None
    start = (k * need * 7) % max(len(recs) - need, 1)
    parts = [read_record(str(p.with_suffix(""))) for p in recs[start:start + need]]
    adc = np.concatenate([p.adc for p in parts])[: int(seconds * 500)]
    return adc, parts[0].gain, parts[0].baseline, tuple(parts[0].leads)


def make_feeds(n: int, seconds: float, unit: str = "bench", frame_s: float = 0.5):
    """Bed feeds (half real PTB-XL, half synthetic) and their bus chunks for the reference."""
    from edge_ecg.runtime.replay import ReplaySource
    from edge_ecg.ward import frames
    from edge_ecg.ward.publisher import BedFeed, open_feed

    feeds, kinds = [], {}
    for i in range(n):
        bed = f"b{i:03d}"
        real = ptbxl_signal(i, seconds) if i % 2 == 0 else None
        if real is not None:
            adc, gain, base, leads = real
            src = ReplaySource(adc, gain, base, 500.0, leads, speed=None, chunk_s=frame_s,
                               name=f"ptbxl:{bed}")
            feeds.append(BedFeed(unit, bed, src, "ptbxl (successive records)", True))
            kinds[bed] = "ptbxl"
        else:
            cond = SYNTH[i % len(SYNTH)]
            feeds.append(open_feed(f"synth:{cond}?seconds={seconds}&seed={i}", unit, bed,
                                   frame_s))
            kinds[bed] = cond
    chunks = {}
    for f in feeds:
        f.source.open()
        out = []
        while True:
            try:
                c = f.source.read(0.0)
            except EOFError:
                break
            out.append(frames.decode(frames.encode(c, len(out)))[0])
        chunks[f.bed] = out
        f.source.close()
    return feeds, chunks, kinds


def start_worker(target, wid: str, args) -> subprocess.Popen:
    """`target`: a URL (--insecure) or the worker's credential file (TLS)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    how = (["--insecure", "--nats", target] if isinstance(target, str) else
           ["--creds", str(target)])
    log = _worker_log(args, wid)
    try:
        return subprocess.Popen([sys.executable, "-m", "edge_ecg", "ward", "worker", *how,
                                 "--id", wid, "--tick-s", str(args.tick), "--snapshot-s",
                                 str(args.snapshot), "--lease-ttl", str(args.lease_ttl)],
                                cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log)
    finally:
        if log is not subprocess.DEVNULL:
            log.close()         # the worker has its own copy


def _worker_log(args, wid: str):
    """Where a worker's log goes: `--worker-logs DIR/<phase>-<id>.log`, or nowhere."""
    if not args.worker_logs:
        return subprocess.DEVNULL
    d = Path(args.worker_logs)
    d.mkdir(parents=True, exist_ok=True)
    n = len(list(d.glob(f"*-{wid}.log")))
    return (d / f"{n:02d}-{wid}.log").open("w")


class SecureBroker:
    """A secure ward in a temporary folder (TLS, a credential per role, admin set-up), with
    the LocalBroker's interface the phases use."""

    def __init__(self, beds: list[str]) -> None:
        import tempfile

        from edge_ecg.ward import broker, bus

        self._tmp = tempfile.TemporaryDirectory(prefix="edge-ecg-bench-ward-")
        wd = broker.WardDir(self._tmp.name).create(broker.BrokerSettings(port=bus.free_port()),
                                                   bridges={"bench": beds})
        self.br = broker.WardBroker(wd)
        self.roles = wd.roles_dir

    def start(self):
        self.br.start()
        return self

    @property
    def proc(self):
        return self.br.proc

    def role(self, user: str):
        return self.br.role(user)

    def stop(self) -> None:
        self.br.stop()

    def close(self) -> None:
        self.br.stop()
        self._tmp.cleanup()


async def run_phase(name: str, n_workers: int, args, feeds, faults: bool,
                    want_events: int, secure: bool = False) -> dict:
    from edge_ecg.ward import bus
    from edge_ecg.ward.publisher import Publisher
    from edge_ecg.ward.station import Station, StationOptions

    if secure:
        from edge_ecg.ward.broker import provision

        broker = SecureBroker([f"{f.unit}.{f.bed}" for f in feeds]).start()
        station_to, pub_to, audit_to = (broker.role("station"), broker.role("publisher-bench"),
                                        broker.role("viewer"))
        worker_to = broker.roles / "worker.json"
    else:
        broker = bus.LocalBroker().start()
        station_to = pub_to = audit_to = worker_to = broker.url
    workers = {}
    # the buckets with the lease TTL the workers are told (--lease-ttl): made with the
    # defaults (3 s) by whoever came first, leases outlived a killed worker by a second more
    cfg = bus.WardConfig(lease_ttl_s=args.lease_ttl)
    try:
        st = Station(station_to, StationOptions(port=0, web=False))   # state() only: no page
        if secure:      # the admin sets the ward up and names the bundle the station expects
            await provision(broker.role("admin"), cfg, bundle=st.model["bundle"])
        else:
            nc = await bus.connect(broker.url, "edge-ecg-bench-setup")
            await bus.ensure(nc.jetstream(), cfg)
            await bus.close(nc)
        ready = asyncio.Event()
        ts = asyncio.create_task(st.run(ready=ready))
        await ready.wait()
        for k in range(n_workers):
            workers[f"w{k}"] = start_worker(worker_to, f"w{k}", args)
        await asyncio.sleep(args.warmup)          # workers import and open the bundle
        for f in feeds:
            f.source.open()
            f.buffer.clear()
            f.done = False
            f.stats.__init__()
        cpu0 = {"broker": cpu_s(broker.proc.pid), "self": cpu_s(os.getpid(), children=False),
                **{k: cpu_s(p.pid) for k, p in workers.items()}}
        threads0 = {k: thread_cpu_s(p.pid) for k, p in workers.items()}
        t0 = time.monotonic()
        pub = Publisher(feeds, pub_to, speed=1.0)
        tp = asyncio.create_task(pub.run())
        fault = {}
        if faults:
            await asyncio.sleep(args.seconds / 3)
            # kill once the station has seen which worker serves the beds (their first events
            # come a window after the phase starts; before, there is no bed to fail over)
            while time.monotonic() - t0 < args.seconds / 2:
                owner = {t["key"]: t["worker"] for t in st.state()["beds"]}
                if any(w is not None for w in owner.values()):
                    break
                await asyncio.sleep(0.2)
            # the worker holding the most beds: with a fixed victim, a worker that had taken
            # no bed (the other was faster to start) was killed and nothing failed over
            held = {w: sum(1 for o in owner.values() if o == w) for w in workers}
            victim = max(sorted(held), key=lambda w: held[w])
            moved = [k for k, w in owner.items() if w == victim]
            t_kill = time.time()
            fault["victim"] = victim
            fault["beds_held"] = held
            fault["tiles_seen"] = len(owner)
            fault["victim_cpu_s"] = cpu_s(workers[victim].pid) - cpu0[victim]   # start -> kill
            workers[victim].send_signal(signal.SIGKILL)
            workers[victim].wait()
            back = {}
            while len(back) < len(moved) and time.time() - t_kill < 30:
                await asyncio.sleep(0.1)
                for t in st.state()["beds"]:
                    if t["key"] in moved and t["key"] not in back and t["worker"] not in (
                            None, victim):
                        back[t["key"]] = time.time() - t_kill
            fault.update(moved=len(moved), failover_s_max=max(back.values(), default=None),
                         failover_s_median=float(np.median(list(back.values()))) if back
                         else None, recovered=len(back))
            await asyncio.sleep(max(args.seconds * 2 / 3 - (time.monotonic() - t0), 0))
            cpu0["broker"] -= cpu_s(broker.proc.pid)
            t_stop = time.time()
            broker.stop()
            await asyncio.sleep(1.0)
            broker.start()
            fault["broker_down_s"] = round(time.time() - t_stop, 2)
            cpu0["broker"] += 0.0
        pst = await tp
        # drain: until the station has every event of the reference, or 2 s without a new one
        # after 20 s (then the shortfall shows in the table)
        last, quiet = -1, time.monotonic()
        t_end = time.monotonic()
        while time.monotonic() - t_end < 60:
            n = st.state()["counters"]["events"]
            if n >= want_events:
                break
            if n != last:
                last, quiet = n, time.monotonic()
            elif time.monotonic() - t_end > 20 and time.monotonic() - quiet > 2.0:
                break
            await asyncio.sleep(0.1)
        want = pst["total"]["published"]
        wall = time.monotonic() - t0
        cpu = {"broker": cpu_s(broker.proc.pid) - cpu0["broker"],
               "publisher+station": cpu_s(os.getpid(), children=False) - cpu0["self"],
               **{k: cpu_s(p.pid) - cpu0[k] for k, p in workers.items() if p.poll() is None}}
        threads = {k: split_threads(p.pid, threads0[k]) for k, p in workers.items()
                   if p.poll() is None}
        if faults:
            cpu[fault["victim"]] = fault.pop("victim_cpu_s")
        state = st.state()
        st.stop()
        await ts
        for p in workers.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in workers.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        from ward_reference import stored_events

        stored = {f.bed: await stored_events(audit_to, f.unit, f.bed) for f in feeds}
        return {"phase": name, "security": "TLS + credentials" if secure else "off",
                "workers": n_workers, "wall_s": wall, "cpu_s": cpu, "worker_threads": threads,
                "publisher": pst["total"], "station": {k: state[k] for k in (
                    "counters", "duplicates", "missing", "latency_ms", "sample_latency_ms")},
                # the station's own verdict at the phase's end: beds it shows as not analysed
                # (its "no data" / "no analysis" technical alarms), which a stalled worker
                # or an unclaimed bed would raise
                "tiles_not_live": sorted(f"{t['key']}: {t['status']}" for t in state["beds"]
                                         if t["status"] != "live"),
                "fault": fault, "stored": stored, "frames_published": want}
    finally:
        for p in workers.values():
            if p.poll() is None:
                p.kill()
        broker.close()


def _r(v):
    return round(v, 2) if isinstance(v, float) else v


def summarise(r: dict, n_beds: int, ref: dict) -> dict:
    from ward_reference import comparable

    cpu_total = sum(v for v in r["cpu_s"].values() if np.isfinite(v))
    signal_s = r["publisher"]["samples"] / 500.0
    cores = cpu_total / r["wall_s"]
    equal = sum([comparable(e) for e in r["stored"][b]] == ref[b] for b in ref)
    dup = sum(len(r["stored"][b]) - len({e["ward"]["id"] for e in r["stored"][b]}) for b in ref)
    stored = sum(len(v) for v in r["stored"].values())
    want = sum(len(v) for v in ref.values())
    return {"phase": r["phase"], "security": r["security"], "workers": r["workers"],
            "beds": n_beds,
            "signal_s_per_bed": round(signal_s / n_beds, 1), "wall_s": round(r["wall_s"], 1),
            "cpu_s": {k: round(v, 1) for k, v in r["cpu_s"].items()},
            "worker_threads_cpu_s": r["worker_threads"],
            "machine_probe_ms_per_bed_s": round(r["machine_probe_ms"], 2),
            "cores_used": round(cores, 2),
            "beds_per_core": round(n_beds * (signal_s / n_beds) / cpu_total, 1),
            "latency_ms": r["station"]["latency_ms"],
            "sample_latency_ms": r["station"]["sample_latency_ms"],
            "frames": {k: r["publisher"][k] for k in ("produced", "published", "dropped",
                                                       "buffered", "duplicates", "retries")},
            "frames_balanced": r["publisher"]["balanced"],
            "events_stored": stored, "events_reference": want, "duplicated_events": dup,
            "beds_equal_to_reference": f"{equal}/{len(ref)}",
            "station_received": r["station"]["counters"]["events"],
            "station_missing": r["station"]["missing"],
            "station_duplicates": r["station"]["duplicates"],
            "station_redelivered": r["station"]["counters"]["redelivered"],
            "tiles_not_live_at_end": r["tiles_not_live"], **r["fault"]}


def machine_probe(chunks: dict, backend, beds: int = 4) -> float:
    """ms of CPU a bed-second of the single-process runtime over the first `beds` beds, in
    this process, just before a phase: the machine's speed at that moment. On this shared
    machine one phase's figure moves by 1.5x with the machine's state; read beds per core
    beside this, which moves with it, not with the ward's code."""
    from ward_reference import reference_events

    some = dict(list(chunks.items())[:beds])
    t = time.process_time()
    for c in some.values():
        reference_events(c, backend)
    signal_s = sum(sum(x.n_samples / x.fs_hz for x in c) for c in some.values())
    return (time.process_time() - t) / signal_s * 1e3


def print_medians(rows: list[dict]) -> None:
    """Each phase's runs side by side and their median: beds per core, p99 sample-to-event,
    failover; and whether every run stored exactly the reference's events."""
    by: dict = {}
    for s in rows:
        by.setdefault((s["phase"], s["security"]), []).append(s)
    print("\n| phase | security | beds per core, each run (median) | machine probe, ms CPU a "
          "bed-second, each run | p99 sample-to-event ms, each run (median) | failover s "
          "(max), each run | every run: events = reference, equal beds, none duplicated |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (phase, sec), runs in by.items():
        bpc = [s["beds_per_core"] for s in runs]
        p99 = [(s["sample_latency_ms"] or {}).get("p99") for s in runs]
        p99 = [v for v in p99 if v is not None]
        fo = [s.get("failover_s_max") for s in runs if s.get("failover_s_max") is not None]
        exact = all(s["events_stored"] == s["events_reference"] and s["duplicated_events"] == 0
                    and s["beds_equal_to_reference"].split("/")[0]
                    == s["beds_equal_to_reference"].split("/")[1] for s in runs)
        probe = " / ".join(f"{s['machine_probe_ms_per_bed_s']:.2f}" for s in runs)
        print(f"| {phase} | {sec} | {' / '.join(f'{v:.1f}' for v in bpc)} "
              f"(**{np.median(bpc):.1f}**) | {probe} | {' / '.join(f'{v:.0f}' for v in p99)}"
              f"{f' ({np.median(p99):.0f})' if p99 else ''} | "
              f"{' / '.join(f'{v:.2f}' for v in fo) or '-'} | {'yes' if exact else '**no**'} |")


def main() -> int:
    from edge_ecg.ward import frames

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--beds", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=40.0, help="signal per bed per phase")
    ap.add_argument("--phases", default="scale,faults")
    ap.add_argument("--security", default="off,on",
                    help="scale phases without and/or with TLS and credentials (the faults "
                         "phase runs with the last)")
    ap.add_argument("--frame-s", type=float, default=frames.DEFAULT_FRAME_S,
                    help="seconds of signal per bus frame (the publisher's default)")
    ap.add_argument("--tick", type=float, default=0.25)
    ap.add_argument("--snapshot", type=float, default=10.0,
                    help="seconds of signal between a bed's state snapshots (the worker's "
                         "default; ~0.7 MB each a bed)")
    ap.add_argument("--lease-ttl", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=1,
                    help="run every phase this many times, round by round (a phase's runs "
                         "spread over the whole bench, not back to back), and add a table of "
                         "the medians: one run on this shared machine moves by ~15 %%")
    ap.add_argument("--worker-logs", default=None, metavar="DIR",
                    help="keep each worker's log here (NN-<id>.log, one per start)")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    from ward_reference import reference_events

    from edge_ecg.runtime.backends import open_backend
    from edge_ecg.runtime.bundle import DEFAULT_BUNDLE

    print(DISCLAIMER)
    print(f"machine: {this_machine()}")
    print(f"event loop (every ward process; {event_loop.ENV}=asyncio for the standard one): "
          f"{event_loop.name()}")
    feeds, chunks, kinds = make_feeds(args.beds, args.seconds, frame_s=args.frame_s)
    n_real = sum(v == "ptbxl" for v in kinds.values())
    print(f"{args.beds} beds, 12 leads at 500 Hz: {n_real} real (PTB-XL), "
          f"{args.beds - n_real} synthetic; {args.seconds:.0f} s of signal each per phase, "
          f"{args.frame_s:g}-s frames, {args.tick:g}-s worker ticks")
    be = open_backend(str(DEFAULT_BUNDLE))
    t = time.perf_counter()
    ref = {b: reference_events(c, be) for b, c in chunks.items()}
    print(f"single-process reference: {sum(map(len, ref.values()))} events in "
          f"{time.perf_counter() - t:.1f} s")
    want = sum(map(len, ref.values()))
    rows = []
    todo = args.phases.split(",")
    modes = [m == "on" for m in args.security.split(",")]

    def phase(name: str, k: int, faults: bool, sec: bool) -> None:
        probe = machine_probe(chunks, be)
        r = event_loop.run(run_phase(name, k, args, feeds, faults, want, secure=sec))
        r["machine_probe_ms"] = probe
        rows.append(summarise(r, args.beds, ref))
        print(json.dumps(rows[-1]), flush=True)     # as each phase ends: a run takes minutes

    for _ in range(max(args.rounds, 1)):
        if "scale" in todo:
            for sec in modes:
                for k in (1, 2):
                    phase("1 worker" if k == 1 else f"{k} workers", k, False, sec)
        if "faults" in todo:
            phase("faults", 2, True, modes[-1])
    print("\n| phase | security | beds per core (all processes) | cores used "
          "| p50 / p99 frame-to-event ms | p50 / p99 sample-to-event ms (from the releasing frame's first sample) "
          "| frames produced = published + dropped + buffered | events stored / reference |"
          " station received | equal beds | failover s (max) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for s in rows:
        lat, slat = s["latency_ms"] or {}, s["sample_latency_ms"] or {}
        f = s["frames"]
        print(f"| {s['phase']} | {s['security']} | {s['beds_per_core']} | {s['cores_used']} | "
              f"{lat.get('p50')} / "
              f"{lat.get('p99')} | {slat.get('p50')} / {slat.get('p99')} | {f['produced']} = "
              f"{f['published']} + {f['dropped']} + {f['buffered']} | {s['events_stored']} / {s['events_reference']} (dup "
              f"{s['duplicated_events']}) | {s['station_received']} | {s['beds_equal_to_reference']} | "
              f"{_r(s.get('failover_s_max'))} |")
    if args.rounds > 1:
        print_medians(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    print(DISCLAIMER)
    return 0


if __name__ == "__main__":
    sys.exit(main())
