"""The ``spikefold`` command: parses arguments and calls into the packages.

Each subcommand lives in the package that does the work; the module named here provides
``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from spikefold import flow

COMMANDS = {
    "demo": ("spikefold.demo", "run the main job on the embedded default and print a summary"),
    "eval": ("spikefold.flow", "evaluate a trained network model in float and fixed point"),
    "bench": ("golden.bench", "benchmark the bit-exact core model against float NumPy"),
    "verilog": ("hdl.export", "write Verilog + a JSON port description for a folded core"),
    "cosim": ("sim.cosim", "co-simulate RTL against the golden model and write a report"),
    "build": ("boards.build", "build a bitstream for a board and report size and Fmax"),
    "sweep": ("boards.sweep", "sweep lanes/N/widths on a device: size, Fmax, throughput"),
    "train": ("golden.train_cli", "train a small SNN on scikit-learn digits (needs [train])"),
}

#: Errors a user can cause; reported in one line, never as a stack trace.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, KeyError, RuntimeError)


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


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        handler = flow.route(args) or args._run
        return int(handler(args) or 0)
    except USER_ERRORS as exc:
        print(f"spikefold {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
