"""ARM64, for real: the device side installed from PyPI's aarch64 wheels in an arm64 Debian
root, run under qemu-user, against the same stream on this machine: the same events?

    sudo python bench/arm64.py                        # build the root once, then compare
    sudo python bench/arm64.py --records 'mitdb/100;mitdb/203;cinc2017/A00001;svdb/800?leads=II,-' --seconds 120

Steps (each skipped when already done; the root lives in `--cache`, outside the repository,
default /var/cache/edge-ecg-arm64, and is reused by later runs):

1. Tools: qemu-user-static and debootstrap from Debian's archive (apt-get), binfmt_misc with
   the qemu-aarch64 handler (flag F: the interpreter is opened once, so it works in a chroot).
2. `debootstrap --arch=arm64 --foreign` of Debian bookworm (python3 3.11, venv, pip), then its
   second stage inside the root, under qemu.
3. A venv in the root with the base package: a wheel of this working tree built here (pure
   Python), its dependencies from PyPI's aarch64 wheels, pinned to the versions installed on
   this machine (numpy, scipy, onnxruntime, wfdb, ...), so a difference is the CPU's, not a
   version's.
4. `edge-ecg stream --source record:R --speed max --seconds S` with the bundled model, on
   this machine and in the root under qemu, JSON Lines to files; then the comparison:
   beats equal (count, sample indices, classes, PR/QRS/QT/RR), predictions equal in labels and
   within the float tolerance below in every number.

Tolerance for the model's numbers: |arm - x86| <= ATOL + RTOL * |x86|, ATOL = 2e-3 (0.2
percentage points of a probability), RTOL = 1e-3 (0.8 ms of an 800-ms RR). Why not exact:
onnxruntime's kernels differ by CPU (MLAS with NEON on aarch64, AVX-512/VNNI on this x86):
other float32 accumulation orders, and the int8 model quantizes its activations at run time,
where a value on a rounding edge can land on the neighbouring int8 step; events round
probabilities to 1e-4 and values to 1e-3. The signal chain (filters, detector, delineation)
is float64 numpy and scipy's sosfilt kernel, element-wise IEEE arithmetic: its outputs, the
beats and their intervals, are compared exactly.

Not in CI: the emulated run takes minutes. Timing under emulation means nothing, so none is
printed; the device profiles stay x86 proxies for timing and gain this correctness check.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SUITE, MIRROR = "bookworm", "http://deb.debian.org/debian"
VENV = "/opt/edge-ecg-venv"
ATOL, RTOL = 2e-3, 1e-3
# niceness of the slow emulated work (`--nice`): it shares the machine; but a process with
# a positive niceness beside one with a negative one (a training run) barely runs at all
NICE = "10"
# model outputs never compared to the sample: wall-clock figures of each run
WALL_KEYS = {"latency_ms", "inference_ms", "wall_s", "info"}
# base dependencies pinned to this machine's versions (the venv on arm64 gets the same)
PINNED = ("numpy", "scipy", "onnxruntime", "wfdb", "pandas", "matplotlib", "pyserial", "tqdm",
          "packaging", "psutil", "cryptography", "protobuf", "flatbuffers", "sympy",
          "coloredlogs")


def in_root(root: Path, *cmd: str) -> list[str]:
    """`cmd` run in the root with a clean environment: this machine's variables (PIP_*,
    SSL_CERT_FILE, ...) name paths that mean other files in there; only the CA bundle
    copied in by `ensure_venv` is named."""
    ca = [f"{k}=/opt/host-ca.crt" for k in ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE")
          if (root / "opt" / "host-ca.crt").is_file()]
    return ["chroot", str(root), "/usr/bin/env", "-i", "HOME=/root", "LANG=C.UTF-8",
            "PATH=/usr/local/bin:/usr/bin:/bin", *ca, *cmd]


def sh(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def ensure_tools() -> None:
    if not (shutil.which("qemu-aarch64-static") and shutil.which("debootstrap")):
        sh(["apt-get", "install", "-y", "-q", "qemu-user-static", "debootstrap",
            "binfmt-support"])
    misc = Path("/proc/sys/fs/binfmt_misc")
    if not (misc / "register").exists():
        sh(["mount", "-t", "binfmt_misc", "binfmt_misc", str(misc)])
    if not (misc / "qemu-aarch64").exists():
        sh(["update-binfmts", "--enable", "qemu-aarch64"])
    flags = (misc / "qemu-aarch64").read_text()
    if "enabled" not in flags:
        raise SystemExit(f"binfmt handler qemu-aarch64 is not enabled:\n{flags}")


class Mounts:
    """/proc and /dev in the root while it runs, unmounted after, whatever happens. Not
    /sys: onnxruntime's cpuinfo reads this x86 machine's CPU topology there and crashes
    under qemu (SIGSEGV, seen); without it, it warns and runs its generic aarch64 kernels."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: list[Path] = []

    def __enter__(self):
        for src, dst, opts in (("proc", "proc", ["-t", "proc"]), ("/dev", "dev", ["--rbind"])):
            target = self.root / dst
            target.mkdir(exist_ok=True)
            if os.path.ismount(target):
                continue
            subprocess.run(["mount", *opts, src, str(target)], check=True)
            self.done.append(target)
        shutil.copy("/etc/resolv.conf", self.root / "etc" / "resolv.conf")
        return self

    def __exit__(self, *exc) -> None:
        for target in reversed(self.done):
            subprocess.run(["umount", "-R", "-l", str(target)], check=False)


def ensure_root(cache: Path) -> Path:
    root = cache / "root"
    done = cache / "root.stage2-done"
    if done.exists():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    if not (root / "debootstrap").exists() and not (root / "usr" / "bin" / "python3").exists():
        sh(["nice", "-n", NICE, "debootstrap", "--arch=arm64", "--foreign", "--variant=minbase",
            "--include=python3,python3-venv,python3-pip,ca-certificates", SUITE, str(root),
            MIRROR])
    if (root / "debootstrap" / "debootstrap").exists():
        sh(["nice", "-n", NICE, "chroot", str(root), "/debootstrap/debootstrap",
            "--second-stage"])
    done.write_text(time.strftime("%Y-%m-%d %H:%M:%S\n"))
    return root


def pins() -> list[str]:
    out = []
    for name in PINNED:
        try:
            out.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    return out


def ensure_venv(root: Path, cache: Path) -> None:
    """The venv with this tree's wheel (rebuilt every run: the tree changes) and the pinned
    base dependencies (pip skips what is already there)."""
    wheels = cache / "wheels"
    shutil.rmtree(wheels, ignore_errors=True)
    wheels.mkdir(parents=True)
    sh([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
        "-w", str(wheels), str(REPO)])
    wheel = next(wheels.glob("edge_ecg-*.whl"))
    inside = root / "opt" / "wheels"
    shutil.rmtree(inside, ignore_errors=True)
    shutil.copytree(wheels, inside)
    # pip in the root trusts what pip here trusts (a network whose egress re-signs TLS
    # needs its CA): the bundle pip here is told to use, else the system's
    ca = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE") or \
        "/etc/ssl/certs/ca-certificates.crt"
    cert = []
    if Path(ca).is_file():
        shutil.copy(ca, root / "opt" / "host-ca.crt")
        cert = ["--cert", "/opt/host-ca.crt"]
    with Mounts(root):
        if not (root / VENV.lstrip("/") / "bin" / "python").exists():
            sh(in_root(root, "python3", "-m", "venv", VENV))
        pip = ["nice", "-n", NICE, *in_root(root, f"{VENV}/bin/pip", "install", "-q",
                                            "--disable-pip-version-check",
                                            "--only-binary=:all:", *cert)]
        # the same versions as here where PyPI has them for aarch64; else the key ones
        # pinned, else what pip picks (the versions used are printed with the results)
        key = [p for p in pins() if p.split("==")[0] in ("numpy", "scipy", "onnxruntime")]
        for attempt in (pins(), key, []):
            try:
                sh([*pip, *(attempt or ["numpy", "scipy", "onnxruntime"])])
                break
            except subprocess.CalledProcessError:
                print(f"pinned install failed ({len(attempt)} pins); trying fewer", flush=True)
        sh([*pip, "--no-deps", "--force-reinstall", f"/opt/wheels/{wheel.name}"])
        # the rest of the base dependencies, at whatever version pip picks
        sh([*pip, f"/opt/wheels/{wheel.name}"])


def stream_cmd(python: str, record: str, seconds: float, out: str) -> list[str]:
    return [python, "-c", "import sys; from edge_ecg.cli import main; sys.exit(main())",
            "stream", "--source", f"record:{record}", "--speed", "max", "--seconds",
            str(seconds), "--output", f"jsonl:{out}"]


def run_native(record: Path, seconds: float, out: Path, query: str = "") -> None:
    # from the repository root, whatever the caller's directory: this checkout's edge_ecg
    subprocess.run(stream_cmd(sys.executable, str(record) + query, seconds, str(out)),
                   check=True, stderr=subprocess.DEVNULL, cwd=REPO)


def run_arm(root: Path, record: Path, seconds: float, out: Path, query: str = "") -> None:
    """The same command in the root under qemu: the record copied in, events copied out."""
    work = root / "tmp" / "edge-ecg-arm64"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for f in record.parent.glob(record.name + ".*"):
        shutil.copy(f, work / f.name)
    inside = f"/tmp/edge-ecg-arm64/{record.name}{query}"
    with Mounts(root):
        res = subprocess.run(["nice", "-n", NICE,
                              *in_root(root, *stream_cmd(f"{VENV}/bin/python", inside, seconds,
                                                         "/tmp/edge-ecg-arm64/events.jsonl"))],
                             stderr=subprocess.PIPE, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"arm64 stream failed on {record}:\n{res.stderr[-3000:]}")
    shutil.copy(work / "events.jsonl", out)


def arch_of(root: Path) -> str:
    with Mounts(root):
        code = ("import platform, numpy, scipy, onnxruntime; print(platform.machine(), "
                "'numpy', numpy.__version__, 'scipy', scipy.__version__, 'onnxruntime', "
                "onnxruntime.__version__)")
        res = subprocess.run(in_root(root, f"{VENV}/bin/python", "-c", code),
                             capture_output=True, text=True, check=True)
    return res.stdout.strip()


def flatten(x, path: str = "") -> dict:
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            if k not in WALL_KEYS:
                out.update(flatten(v, f"{path}.{k}" if path else k))
        return out
    if isinstance(x, list):
        out = {}
        for i, v in enumerate(x):
            out.update(flatten(v, f"{path}[{i}]"))
        return out
    return {path: x}


def compare(x86: list[dict], arm: list[dict]) -> dict:
    """Beats exact; every other event matched by (type, index), strings and booleans exact,
    numbers within ATOL + RTOL |x86|."""
    def beats(evs):
        return [e for e in evs if e["type"] == "beat"]

    bx, ba = beats(x86), beats(arm)
    res = {"beats": (len(bx), len(ba)),
           "beat_indices_equal": [e["index"] for e in bx] == [e["index"] for e in ba],
           "beats_equal": [flatten(e) for e in bx] == [flatten(e) for e in ba],
           "predictions": (sum(e["type"] == "prediction" for e in x86),
                           sum(e["type"] == "prediction" for e in arm))}
    def key(e):
        return e["type"], e.get("index")

    ax = {key(e): e for e in x86 if e["type"] not in ("beat", "status")}
    aa = {key(e): e for e in arm if e["type"] not in ("beat", "status")}
    res["events_matched"] = sorted(ax) == sorted(aa)
    worst, worst_at, labels_differ, n_num = 0.0, None, [], 0
    for k in sorted(set(ax) & set(aa), key=str):
        fx, fa = flatten(ax[k]), flatten(aa[k])
        for p in sorted(set(fx) | set(fa)):
            vx, va = fx.get(p), fa.get(p)
            if isinstance(vx, (int, float)) and isinstance(va, (int, float)) \
                    and not isinstance(vx, bool):
                n_num += 1
                excess = abs(va - vx) - (ATOL + RTOL * abs(vx))
                d = abs(va - vx)
                if d > worst:
                    worst, worst_at = d, (k, p, vx, va)
                if excess > 0:
                    labels_differ.append((k, p, vx, va))
            elif vx != va:
                labels_differ.append((k, p, vx, va))
    res.update(numbers=n_num, max_abs_diff=worst, max_at=worst_at, mismatches=labels_differ)
    return res


def main() -> None:
    global NICE
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=Path("/var/cache/edge-ecg-arm64"))
    ap.add_argument("--records", default="mitdb/100;mitdb/203;cinc2017/A00001;svdb/800?leads=II,-",
                    help="records under ../shared/data, separated by ';', each with its "
                         "source options (?leads=...) where its channels name no lead")
    ap.add_argument("--seconds", type=float, default=120.0, help="signal streamed per record")
    ap.add_argument("--nice", default=NICE, help="niceness of debootstrap, pip and the "
                    "emulated runs (default %(default)s; 0 beside a high-priority job)")
    ap.add_argument("--skip-install", action="store_true",
                    help="reuse the root's venv as it is (no wheel rebuilt)")
    args = ap.parse_args()
    NICE = str(args.nice)
    if os.geteuid() != 0:
        raise SystemExit("bench/arm64.py needs root (debootstrap, chroot, mounts)")
    # SIGTERM unwinds like Ctrl-C, so the root's /proc, /sys and /dev are unmounted
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ensure_tools()
    root = ensure_root(args.cache)
    if not args.skip_install:
        ensure_venv(root, args.cache)
    sys.path.insert(0, str(REPO))
    from profiles.machine import this_machine

    print(f"# edge-ecg on ARM64 (qemu-user) against this machine\nnative: "
          f"{this_machine().summary()}\narm64 root: {root} ({arch_of(root)}; Debian {SUITE}, "
          f"qemu-aarch64-static, PyPI aarch64 wheels)")
    print(f"tolerance on model numbers: |arm - x86| <= {ATOL:g} + {RTOL:g} |x86|; beats exact")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.records.split(";"):
            # a record's source options ride along: svdb/800?leads=II,- (SVDB names no lead)
            path, sep, query = name.partition("?")
            record, query = DATA / path, sep + query
            if not record.with_suffix(".hea").is_file():
                print(f"{name}: not found under {DATA}, skipped")
                continue
            nx, na = Path(tmp) / "x86.jsonl", Path(tmp) / "arm.jsonl"
            run_native(record, args.seconds, nx, query)
            run_arm(root, record, args.seconds, na, query)
            ex = [json.loads(ln) for ln in nx.read_text().splitlines()]
            ea = [json.loads(ln) for ln in na.read_text().splitlines()]
            r = compare(ex, ea)
            good = (r["beats_equal"] and r["events_matched"] and not r["mismatches"])
            ok &= good
            print(f"\n## {name}, {args.seconds:g} s: {'SAME EVENTS' if good else 'DIFFERENT'}")
            print(f"beats x86 {r['beats'][0]}, arm64 {r['beats'][1]}; indices equal "
                  f"{r['beat_indices_equal']}; beat events equal (class, PR/QRS/QT/RR) "
                  f"{r['beats_equal']}")
            print(f"predictions x86 {r['predictions'][0]}, arm64 {r['predictions'][1]}; other "
                  f"events matched {r['events_matched']}; {r['numbers']} numbers compared, "
                  f"max |diff| {r['max_abs_diff']:.2g}"
                  + (f" at {r['max_at'][0]} {r['max_at'][1]} ({r['max_at'][2]} vs "
                     f"{r['max_at'][3]})" if r["max_at"] else ""))
            for m in r["mismatches"][:10]:
                print(f"  mismatch {m}")
    print(f"\nverdict: {'the same events on ARM64' if ok else 'DIFFERENCES (above)'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
