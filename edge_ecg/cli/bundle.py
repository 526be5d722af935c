"""`edge-ecg bundle verify|info|sign|keygen`: check, summarise or sign a bundle; make a key.

    edge-ecg bundle keygen --out ~/edge-ecg-signing --name my-org      # NAME.key (0600), NAME.pub
    edge-ecg bundle sign BUNDLE --key ~/edge-ecg-signing/my-org.key
    edge-ecg bundle verify BUNDLE --trusted-keys ~/edge-ecg-signing/my-org.pub

`verify` and `info` make the check the runtime makes before loading a model
(`edge_ecg.runtime.bundle.verify_bundle`): structure, every file's size and sha256, and the
manifest's Ed25519 signature by a trusted key (default: EDGE_ECG_TRUSTED_KEYS, else the key
shipped with the package).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_ecg import DISCLAIMER


def add_trust_options(p: argparse.ArgumentParser) -> None:
    """--trusted-keys and --allow-unsigned, as every command that runs a bundle takes them."""
    p.add_argument("--trusted-keys", default=None, metavar="PATH",
                   help="a .pub file or a folder of them: the only signers accepted (default: "
                        "$EDGE_ECG_TRUSTED_KEYS, else the key shipped with edge-ecg)")
    p.add_argument("--allow-unsigned", action="store_true", default=None,
                   help="accept a bundle that is unsigned or signed by an untrusted key, with a "
                        "warning (development only; also EDGE_ECG_ALLOW_UNSIGNED=1)")


def trust_policy(args: argparse.Namespace):
    from edge_ecg.runtime.signing import TrustPolicy

    return TrustPolicy.resolve(getattr(args, "trusted_keys", None),
                               getattr(args, "allow_unsigned", None))


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    v = sub.add_parser("verify", help="check every file's size and sha256 against the manifest "
                                      "and the manifest's signature; print the signer")
    v.add_argument("bundle", type=Path)
    add_trust_options(v)
    i = sub.add_parser("info", help="print the bundle's tasks, variants, routing and figures")
    i.add_argument("bundle", type=Path)
    add_trust_options(i)
    s = sub.add_parser("sign", help="check the bundle's files, then sign its manifest "
                                    "(writes manifest.sig, replacing any earlier signature)")
    s.add_argument("bundle", type=Path)
    s.add_argument("--key", required=True, type=Path, help="private key (`bundle keygen`)")
    s.add_argument("--signer", default=None,
                   help="name written beside the signature (default: the key file's stem)")
    k = sub.add_parser("keygen", help="make an Ed25519 signing key: NAME.key (mode 0600, keep "
                                      "it secret) and NAME.pub (give it to deployments)")
    k.add_argument("--out", required=True, type=Path, help="folder for the key pair (made 0700)")
    k.add_argument("--name", default="bundle-signing", help="file stem of the key pair")


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def summary_lines(bundle: Path, m) -> list[str]:
    """A short human summary of a verified manifest."""
    lines = [(f"bundle {bundle}: model {m.model_version}, format {m.format} v{m.format_version}, "
             f"training data: {m.training_data}")]
    sig = m.signal
    lines.append(f"  signal: {sig.get('fs_hz')} Hz, {len(sig.get('leads', []))} leads, "
                 f"window {sig.get('window_s')} s, hop {sig.get('hop_s')} s, "
                 f"filter {sig.get('filter')}, normalisation {sig.get('normalisation')}")
    for t in m.tasks:
        what = t.get("unit") or ", ".join(t.get("labels", [])[:4]) + (
            " ..." if len(t.get("labels", [])) > 4 else "")
        lines.append(f"  task {t['name']} ({t['kind']}, output {t['output']!r}): {what}")
    paths = m.routing.get("paths", {})
    if paths:
        lines.append("  routed experts: " + "; ".join(
            f"{p} {d['kept']} of {d['total']}" for p, d in paths.items()))
    cost = m.routing.get("cost", {})
    if cost:
        lines.append("  params / FLOPs: all experts {:,} / {:,}, routed {:,} / {:,}".format(
            cost["all_experts"]["params"], cost["all_experts"]["flops"],
            cost["routed"]["params"], cost["routed"]["flops"]))
    for name, v in sorted(m.variants.items()):
        size = sum(m.files[f]["bytes"] for f in (v["file"], *v.get("extra_files", ())))
        mark = " (default)" if name == m.default_variant else ""
        par = m.parity.get(name, {})
        regs = [d["max_abs_diff"] for d in par.get("tasks", {}).values() if "max_abs_diff" in d]
        agree = [d["class_agreement"] for d in par.get("tasks", {}).values()
                 if "class_agreement" in d]
        fig = []
        if regs:
            fig.append(f"max regression diff {max(regs):.3g}")
        if agree:
            fig.append(f"min class agreement {min(agree):.3f}")
        drops = metric_change(m, name)
        if drops:
            fig.append("metric change " + ", ".join(f"{t} {d:+.4f}" for t, d in drops.items()))
        lines.append(f"  variant {name}{mark}: {v['backend']} {v['precision']}"
                     f"{' routed' if v['routed'] else ''}, {_size(size)}"
                     + (f", {', '.join(fig)}" if fig else ""))
    return lines


def metric_change(m, variant: str) -> dict[str, float]:
    """Per task, the primary metric of `variant` minus that of torch fp32 with all experts (as
    recorded at export; MAE in task units, F1/accuracy as fractions)."""
    ref, got = m.metrics.get("torch-fp32", {}), m.metrics.get(variant, {})
    out = {}
    for t in m.tasks:
        a = ref.get(t["name"], {}).get(t.get("metric", ""))
        b = got.get(t["name"], {}).get(t.get("metric", ""))
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            out[f"{t['name']} {t['metric']}"] = float(b) - float(a)
    return out


def run(args: argparse.Namespace) -> int:
    import warnings

    from edge_ecg.runtime.bundle import sign_bundle, verify_bundle
    from edge_ecg.runtime.signing import UnsignedBundleWarning, generate_keypair

    if args.action == "keygen":
        key, pub, kid = generate_keypair(args.out, args.name)
        print(f"private key {key} (mode 0600: keep it secret, off the repository and the devices)")
        print(f"public key  {pub} (key id {kid})")
        print(f"sign:  edge-ecg bundle sign BUNDLE --key {key}")
        print(f"trust: pass --trusted-keys {pub} (or put it in the folder EDGE_ECG_TRUSTED_KEYS "
              "names) on the devices that run its bundles")
        return 0
    if args.action == "sign":
        check = sign_bundle(args.bundle, args.key, args.signer)
        print(f"bundle {args.bundle}: signed by {check.signer} (ed25519 key {check.key_id}); "
              "deployments must trust its .pub to run it")
        return 0
    # the verdict is printed below; the runtime's warning would only repeat it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsignedBundleWarning)
        m, check = verify_bundle(args.bundle, trust=trust_policy(args))
    if args.action == "verify":
        total = sum(f["bytes"] for f in m.files.values())
        print(f"bundle {args.bundle}: {'OK' if check.trusted else 'ACCEPTED WITHOUT TRUST'}, "
              f"{check.describe()}; {len(m.files)} files, {_size(total)}, sha256 verified; "
              f"variants: {', '.join(sorted(m.variants))}; default {m.default_variant}")
    else:
        print("\n".join(summary_lines(args.bundle, m)))
        print(f"  signature: {check.describe()}")
        print(DISCLAIMER)
    return 0
