"""Write a LIF array as Verilog plus a JSON description of its ports (``spikefold verilog``).

The Verilog comes from :func:`amaranth.back.verilog.convert` with ``emit_src=False``, so the
same core and lane count give the same bytes on every machine (no source paths, no dates).
The JSON (``"format": "spikefold-rtl"``, version 1; :func:`describe`) lists every
Verilog port with its direction and width and, for each packed payload port, the bit fields
in it, so that testbenches and board tops never hard-code a layout.

The ``ready`` signals of the ``always_ready`` load streams are the constant 1 in Amaranth and
have no Verilog port (a load is accepted in every cycle its ``valid`` is high).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from amaranth import Shape
from amaranth.back import verilog
from amaranth.hdl import Const, Value, ValueCastable
from amaranth.lib import data, wiring

from golden.corefile import FoldedCore
from golden.examples import add_core_arguments, core_from_args

from .lif_array import LIFArray

__all__ = ["FORMAT", "VERSION", "export_verilog", "describe", "verilog_ports", "payload_fields",
           "write_rtl", "time_zero_events",
           "add_arguments", "run"]

FORMAT = "spikefold-rtl"
VERSION = 1

#: Names of the array elements of each packed payload port in the JSON description.
_ELEMENT_NAMES = {"i_current__payload": "current"}


def verilog_ports(dut):
    """``{verilog_name: (signal, "in"/"out")}`` of ``dut``'s signature, constants left out."""
    ports = {}
    for path, member, value in dut.signature.flatten(dut):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if isinstance(value, Const) or not isinstance(value, Value):
            continue
        ports["__".join(map(str, path))] = (value, "in" if member.flow == wiring.In else "out")
    return ports


def payload_fields(shape, port):
    """JSON field table of a payload of ``shape`` (a struct or an array layout)."""
    if isinstance(shape, data.ArrayLayout):
        elem = Shape.cast(shape.elem_shape)
        return [{"name": _ELEMENT_NAMES.get(port, "element"), "offset": 0,
                 "width": elem.width, "count": shape.length, "signed": elem.signed}]
    fields = []
    for name, field in shape:
        fshape = field.shape
        if isinstance(fshape, data.ArrayLayout):
            elem = Shape.cast(fshape.elem_shape)
            fields.append({"name": name, "offset": field.offset, "width": elem.width,
                           "count": fshape.length, "signed": elem.signed})
        else:
            s = Shape.cast(fshape)
            fields.append({"name": name, "offset": field.offset, "width": s.width,
                           "count": 1, "signed": s.signed})
    return fields


def describe(dut, name):
    """The JSON description (a dict) of ``dut`` exported as module ``name``."""
    ports = {"clk": {"dir": "in", "width": 1}, "rst": {"dir": "in", "width": 1}}
    for port, (value, direction) in verilog_ports(dut).items():
        ports[port] = {"dir": direction, "width": len(value)}
    fields = {}
    for stream_name in ("i_current", "o_spikes", "load_threshold", "load_affine"):
        stream_if = getattr(dut, stream_name, None)
        if stream_if is None:
            continue
        port = f"{stream_name}__payload"
        fields[port] = payload_fields(stream_if.payload.shape(), port)
    return {
        "format": FORMAT, "version": VERSION, "top": name, "lanes": dut.lanes,
        "latency": dut.latency, "beats_per_step": dut.beats_per_step,
        "config": dut.config.to_json(), "ports": ports, "fields": fields,
    }


def export_verilog(folded_core, lanes, out_dir, name="spikefold_lif_array"):
    """Write ``<name>.v`` and ``<name>.json`` for ``folded_core`` with ``lanes`` lanes.

    Parameters
    ----------
    folded_core : golden.corefile.FoldedCore
    lanes : int
    out_dir : path
        Created if missing.
    name : str
        Verilog module name and file stem.

    Returns
    -------
    (Path, Path)
        The Verilog and JSON files.

    Raises
    ------
    TypeError, ValueError
        A core that is not a ``FoldedCore``, a bad lane count or module name.
    """
    if not isinstance(folded_core, FoldedCore):
        raise TypeError(f"folded_core must be a golden.corefile.FoldedCore, not {folded_core!r}")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"module name must be a Verilog identifier, not {name!r}")
    dut = LIFArray.from_folded(folded_core, lanes)
    return write_rtl(dut, describe(dut, name), name, out_dir)


_TIME_ZERO = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+) +"
                        r"= 0;$", re.M)


def time_zero_events(text):
    """Make Yosys's time-zero trigger of ``always @*`` blocks work on Icarus Verilog.

    Yosys gives every module a dummy ``reg ...dump_module$N = 0;`` read by each
    ``always @*`` block, so that the block runs once at time 0 even when none of its real
    inputs ever changes. Icarus 11 (``-g2012`` as cocotb runs it) gives a declaration's
    initial value no event, so such a block never runs and its outputs stay X: a partial-sum
    read enable that is the constant 1 until the first bank fills kept the conv stage's
    read data X for 300 cycles and reached the LIF array's spikes (Verilator and the
    Amaranth simulator start at 0 and were right). An extra ``initial #0 ... = 1`` (the
    inactive region, after every ``always`` block waits) gives Icarus the event; it sits
    inside ```ifdef __ICARUS__`` so that Verilator (which wants ``--timing`` for a delay)
    and synthesis never see it.
    """
    return _TIME_ZERO.sub(lambda m: f"{m.group(0)}\n`ifdef __ICARUS__\n"
                                    f"{m.group(1)}initial #0 {m.group(2)} = 1'h1;\n`endif",
                          text)


def write_rtl(dut, desc, name, out_dir):
    """Write ``dut`` as reproducible Verilog ``<name>.v`` and ``desc`` as ``<name>.json``.

    Ports are named explicitly, directions inferred: the default port list would include
    the constant ``ready`` of always-ready streams, which ``convert()`` rejects.
    """
    ports = [(port, value, None) for port, (value, _) in verilog_ports(dut).items()]
    text = time_zero_events(verilog.convert(dut, name=name, ports=ports, emit_src=False))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    v_path, j_path = out_dir / f"{name}.v", out_dir / f"{name}.json"
    v_path.write_text(text)
    j_path.write_text(json.dumps(desc, indent=2) + "\n")
    return v_path, j_path


# -- spikefold verilog ----------------------------------------------------------------------

def add_arguments(parser):
    add_core_arguments(parser)
    parser.add_argument("--out", "-o", default="build/verilog",
                        help="output directory (default build/verilog)")
    parser.add_argument("--name", default="spikefold_lif_array",
                        help="Verilog module name and file stem")


def run(args):
    folded = core_from_args(args)
    v_path, j_path = export_verilog(folded, args.lanes, args.out, name=args.name)
    desc = json.loads(j_path.read_text())
    cfg = folded.config
    print(f"wrote {v_path} and {j_path}: N={cfg.neurons} P={desc['lanes']} "
          f"latency={desc['latency']} beats/step={desc['beats_per_step']} "
          f"membrane={cfg.membrane} reset={cfg.reset} affine={cfg.affine}")
    return 0
