"""The `edge-ecg` command: a thin layer over library functions tests call directly.

Each subcommand is one module of this package with `configure(parser)` and `run(args) -> int`
(`formatter` is the help formatter they share).
Modules import heavy dependencies (torch, onnxruntime) inside `run`, so `--help` stays fast
and the on-device commands never load torch.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from edge_ecg import DISCLAIMER, __version__
from edge_ecg.cli.formatter import HelpFormatter
from edge_ecg.errors import EdgeECGError

# name -> (module, one-line help), in pipeline order.
COMMANDS: dict[str, tuple[str, str]] = {
    "simulate": ("simulate", "write synthetic 12-lead ECG records (WFDB) and a label table"),
    "beats": ("beats", "detect beats in a WFDB record (streaming) and score them against annotations"),
    "delineate": ("delineate", "P/QRS/T onsets, peaks and offsets scored against LUDB's annotations"),
    "train": ("train", "pretrain and fine-tune ECG-MoE with peft LoRA"),
    "evaluate": ("evaluate", "per-task metrics of a checkpoint or bundle on a data set"),
    "stack": ("stack", "fit a bundle's rhythm stack (RR history + network) or, with --beats, its per-beat stack"),
    "export": ("export", "merge LoRA, route experts, quantize and write an ONNX/OpenVINO bundle"),
    "bundle": ("bundle", "inspect and verify exported bundles"),
    "bridge": ("bridge", "wire-protocol tools: the virtual monitor on a pseudo-terminal"),
    "stream": ("stream", "run the on-device runtime on a source and emit JSON Lines events"),
    "demo": ("demo", "virtual monitor -> runtime with the bundled model, live predictions"),
    "profile": ("profile", "profile runtime latency under a device profile"),
    "ward": ("ward", "a ward on NATS JetStream: bedside publishers, workers, central station"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `only`, just that subcommand's module is imported and
    configured (the others are listed with their one-line help, which is data here). Why:
    importing every subcommand module pulled asyncio, json and the bundle/signing code into
    every run (`python -X importtime`), before the one command asked for had begun."""
    parser = argparse.ArgumentParser(
        prog="edge-ecg",
        description="ECG-MoE on the edge: signal -> data -> model -> export -> runtime.",
        epilog=DISCLAIMER,
    )
    parser.add_argument("--version", action="version", version=f"edge-ecg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text, description=help_text, add_help=False)
            continue
        try:
            mod = importlib.import_module(f"edge_ecg.cli.{module}")
        except ModuleNotFoundError as exc:
            if exc.name == f"edge_ecg.cli.{module}":
                continue  # subcommand not built yet
            raise
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=HelpFormatter)
        mod.configure(p)
        if name != "ward":          # the ward's roles take these options themselves
            _log_options(p)
        p.set_defaults(_run=mod.run)
    return parser


# Commands that run the on-device runtime or the ward: numerical libraries one thread each
# (edge_ecg.runtime.blas_threads), set before the command imports numpy
ONE_BLAS_THREAD = frozenset({"stream", "demo", "profile", "bridge", "ward"})


def _log_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("logs", "the library's log messages on stderr")
    g.add_argument("--log-json", action="store_true", help="log JSON lines to stderr")
    g.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def _command_of(argv: list[str]) -> str | None:
    """The subcommand an argument list names: its first word not an option (the top-level
    parser takes only flags before it); None when there is none or it is unknown."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser(only=_command_of(sys.argv[1:] if argv is None else list(argv)))
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    if args.command in ONE_BLAS_THREAD:
        from edge_ecg.runtime.blas_threads import one_thread_per_process

        one_thread_per_process()
    from edge_ecg.ward import logs  # stdlib only: the ward's log format, not the ward

    try:
        with logs.configured(getattr(args, "log_json", False), getattr(args, "log_level", "INFO")):
            return int(args._run(args) or 0)
    except EdgeECGError as exc:
        print(f"edge-ecg {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Whoever read our output went away (`edge-ecg stream ... | head`): stop quietly as
        # Unix tools do; point stdout at /dev/null so the interpreter's final flush is silent.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a tool killed by a closed pipe


if __name__ == "__main__":
    sys.exit(main())
