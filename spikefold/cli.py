"""The ``spikefold`` command: parses arguments and calls into the packages.

Each subcommand lives in the package that does the work; the module named here provides
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
from pathlib import Path

from spikefold import flow

COMMANDS = {
    "demo": ("spikefold.demo", "run the main job on the embedded default and print a summary"),
    "eval": ("spikefold.flow", "evaluate a trained network model in float and fixed point"),
    "bench": ("golden.bench", "benchmark the bit-exact core model against float NumPy"),
    "verilog": ("hdl.export", "write Verilog + a JSON port description for a folded core"),
    "cosim": ("sim.cosim", "co-simulate RTL against the golden model and write a report"),
    "build": ("boards.build", "build a bitstream for a board and report size and Fmax"),
    "sweep": ("boards.sweep", "sweep lanes/N/widths on a device: size, Fmax, throughput"),
    "plan": ("boards.capacity", "plan a network on a device: block RAM, cycles, what fits"),
    "train": ("golden.train_cli", "train a small SNN on scikit-learn digits (needs [train])"),
    "import": ("spikefold.importer.cli", "import an snnTorch/SpikingJelly module or a NIR file"),
    "export": ("spikefold.nir_export", "write a model file as a NIR graph (spikefold/snnTorch/Norse)"),
    "run": ("spikefold.run", "classify images with a network on a board through its UART"),
}

#: Errors a user can cause; reported in one line, never as a stack trace.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, KeyError, RuntimeError)

#: What each command writes: argument dest -> "dir" (a directory it creates or fills) or
#: "file". Checked before any work starts, so a bad path never costs the user a run.
OUTPUTS = {
    "demo": {"out": "dir"}, "verilog": {"out": "dir"}, "cosim": {"out": "dir"},
    "build": {"out": "dir"}, "sweep": {"out": "dir"}, "train": {"out": "file"},
    "run": {"out": "dir"}, "export": {"out": "file"},
}

#: Install hint for Icarus Verilog, which every co-simulation runs.
ICARUS_HINT = ("install it with sudo apt-get install iverilog (Debian/Ubuntu), "
               "brew install icarus-verilog (macOS) or `make setup`")


class _Parser(argparse.ArgumentParser):
    """Report bad arguments in one line (the usage is one ``--help`` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _Parser(
        prog="spikefold",
        description="Put trained spiking neural networks with SNN batch norm on FPGAs, bit-exactly.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue  # this stage is not part of the installation
            raise
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        flow.extend_parser(name, p)
        p.set_defaults(_run=module.run)
    return parser


def _flag(dest):
    return "--" + dest.replace("_", "-")


def _writable(directory):
    return os.access(directory, os.W_OK | os.X_OK)


def check_output(path, kind, flag="--out"):
    """Refuse an output path that cannot be written, before any work.

    ``kind`` is ``"dir"`` (the directory is created if missing) or ``"file"`` (its parent
    directory is created if missing). Raises ValueError naming ``flag`` and the path.
    """
    path = Path(path)
    if kind == "file":
        if path.is_dir():
            raise ValueError(f"{flag} {path} is a directory; give a file name such as "
                             f"{path / 'model.npz'}")
        if path.exists() and not os.access(path, os.W_OK):
            raise ValueError(f"{flag} {path} is not writable")
        target = path.parent
    else:
        if path.exists() and not path.is_dir():
            raise ValueError(f"{flag} {path} exists and is not a directory")
        target = path
    # The nearest existing ancestor must be a directory we may write into.
    probe = Path(os.path.abspath(target))
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"{flag} {path}: {probe} is a file, not a directory")
    if not _writable(probe):
        raise ValueError(f"{flag} {path}: directory {probe} is not writable")


def _needs_icarus(args):
    if args.command == "cosim":
        return True
    return args.command == "demo" and getattr(args, "samples", 0) > 0


def preflight(args):
    """The checks every command shares, run before the command does any work."""
    for dest, kind in OUTPUTS.get(args.command, {}).items():
        value = getattr(args, dest, None)
        if value is not None:
            check_output(value, kind, _flag(dest))
    if getattr(args, "rtl_json", None) and getattr(args, "rtl", None):
        # Read the user's description here, so its errors name the user's file and not
        # the copy in the build directory.
        from sim.desc import RtlDescription
        RtlDescription.load(args.rtl_json, flag="--rtl-json")
    if _needs_icarus(args) and (shutil.which("iverilog") is None or shutil.which("vvp") is None):
        what = ("the RTL stage needs" if args.command == "demo" else "co-simulation needs")
        skip = "; --samples 0 skips the RTL stage" if args.command == "demo" else ""
        raise RuntimeError(f"{what} Icarus Verilog (iverilog and vvp on PATH); "
                           f"{ICARUS_HINT}{skip}")


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        preflight(args)
        handler = flow.route(args) or args._run
        return int(handler(args) or 0)
    except USER_ERRORS as exc:
        print(f"spikefold {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Anything the up-front checks could not foresee (a full disk, a file vanishing).
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"spikefold {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
