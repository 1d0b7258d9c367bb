"""One command-line flow for a trained network model file (``spikefold-network``).

``spikefold eval`` is this module's own command; ``verilog``, ``cosim`` and ``build`` route
here when ``--model`` names a network model file (a folded core file keeps its single-core
workflow)::

    spikefold eval    --model M.npz [--inputs X.npy] [--labels Y.npy] --out DIR
    spikefold verilog --model M.npz -o DIR
    spikefold cosim   --model M.npz [--inputs X.npy] --samples N --out DIR
    spikefold build   --model M.npz --board B [--bench] --out DIR

``X.npy`` holds the network input ``x`` (n x input shape, floats; the model's own test data
is ``pixel_scale * data.test_x``), fed at every timestep. A model without stored formats
is calibrated on its calibration data with ``--bits``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["add_arguments", "run", "extend_parser", "route", "load_model", "model_inputs",
           "integer_network", "out_dir"]


# -- shared pieces ------------------------------------------------------------------------------

def out_dir(path, flag="--out"):
    """Create the output directory ``path`` now (before any work) or fail in one line."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{flag} {path}: exists and is not a directory")
    for parent in path.parents:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"{flag} {path}: {parent} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{flag} {path}: cannot create the directory ({exc.strerror})") from None
    if not os.access(path, os.W_OK):
        raise ValueError(f"{flag} {path}: the directory is not writable")
    return path


def load_model(path):
    from golden.modelfile import ModelFile
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--model: no such file: {path}")
    return ModelFile.load(path)


def _load_npy(path, flag):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{flag}: no such file: {path}")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        raise ValueError(f"{flag} {path}: not a NumPy .npy array (it starts with {magic!r})")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError:
        raise ValueError(f"{flag} {path}: holds Python objects, not numbers") from None
    except (OSError, EOFError) as exc:
        raise ValueError(f"{flag} {path}: truncated or damaged .npy ({exc})") from None


def model_inputs(model, inputs=None, labels=None, samples=None):
    """``(x, y)``: the network inputs and labels (or ``None``) that a command runs on."""
    shape = tuple(model.network.input_shape)
    if inputs is not None:
        x = np.asarray(_load_npy(inputs, "--inputs"), dtype=np.float64)
        if x.shape == shape:
            x = x[None]
        if x.ndim < 2 or int(np.prod(x.shape[1:])) != int(np.prod(shape)):
            want = " x ".join(map(str, shape))
            raise ValueError(f"--inputs {inputs}: shape {x.shape} is not n x {want}")
        x = x.reshape((len(x),) + shape)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"--inputs {inputs}: holds NaN or inf")
        y = None
    else:
        if model.test_x is None:
            raise ValueError("the model file holds no test data (data.test_x): pass --inputs")
        x, y = model.inputs(model.test_x), model.test_y
    if labels is not None:
        y = np.asarray(_load_npy(labels, "--labels"))
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"--labels {labels}: must hold {len(x)} integer labels, not "
                             f"{y.dtype} {y.shape}")
    if samples is not None:
        if not isinstance(samples, int) or samples < 0:
            raise ValueError(f"--samples must be >= 0, not {samples!r}")
        if samples:
            x = x[:samples]
            y = None if y is None else y[:samples]
    return x, (None if y is None else np.asarray(y, dtype=np.int64))


def integer_network(model, bits=16):
    """The model's bit-exact integer network (stored formats, else calibrated)."""
    from golden.calibrate import calibrate
    from golden.network import IntegerNetwork
    if model.formats is not None:
        return IntegerNetwork.from_folded(model.network.fold(), model.formats)
    if model.calib_x is None:
        raise ValueError("the model file holds neither fixed-point formats nor calibration "
                         "data (data.calib_x): calibrate it with golden.calibrate first")
    formats = calibrate(model.network, model.inputs(model.calib_x), bits=bits)
    return IntegerNetwork.from_folded(model.network.fold(), formats)


# -- spikefold eval -----------------------------------------------------------------------------

def add_arguments(parser):
    parser.add_argument("--model", required=True, metavar="M.npz",
                        help="network model file (spikefold train / spikefold import)")
    parser.add_argument("--inputs", metavar="X.npy",
                        help="network inputs x (n x input shape); default: the model's test data")
    parser.add_argument("--labels", metavar="Y.npy",
                        help="labels of --inputs (default: the model's test labels)")
    parser.add_argument("--samples", type=int, default=0,
                        help="evaluate only the first N samples (default 0: all)")
    parser.add_argument("--bits", type=int, default=16,
                        help="width when the model has no stored formats (default 16)")
    parser.add_argument("--out", "-o", default="reports/eval",
                        help="output directory for eval.npz (default reports/eval)")


def check_args(args):
    """Refuse bad options before any file is read or written."""
    samples = getattr(args, "samples", 0) or 0
    if samples < 0:
        raise ValueError(f"--samples must be >= 0, not {samples}")
    if not 2 <= args.bits <= 48:
        raise ValueError(f"--bits must be an integer in 2..48, not {args.bits}")
    for flag, value in (("--in-lanes", getattr(args, "in_lanes", None)),
                        ("--lanes", getattr(args, "lanes", None))):
        if value is not None and value < 1:
            raise ValueError(f"{flag} must be a positive integer, not {value}")


def run(args):
    check_args(args)
    model = load_model(args.model)
    x, y = model_inputs(model, args.inputs, args.labels, args.samples)
    out = out_dir(args.out)
    inet = integer_network(model, args.bits)
    f = model.network.forward(x)
    q = inet.run(x)
    scale = inet.T * 2.0 ** inet.layers[-1].formats.current.frac
    fixed_logits = q.logits_q / scale
    arrays = {"float_logits": f.logits, "fixed_logits": fixed_logits,
              "fixed_logits_q": q.logits_q, "float_pred": f.predict(),
              "fixed_pred": q.predict()}
    summary = {"model": str(args.model), "samples": int(len(x)),
               "prediction_agreement": float(np.mean(f.predict() == q.predict())),
               "spike_agreement": [float(np.mean(a == b)) for a, b in zip(f.spikes, q.spikes)],
               "saturations": q.saturations}
    if y is not None:
        arrays["labels"] = y
        summary["float_accuracy"] = float(np.mean(f.predict() == y))
        summary["fixed_accuracy"] = float(np.mean(q.predict() == y))
    np.savez(out / "eval.npz", **arrays)
    (out / "eval.json").write_text(json.dumps(summary, indent=2, default=int) + "\n")
    line = f"{len(x)} samples"
    if y is not None:
        line += (f": float accuracy {summary['float_accuracy']:.2%}, fixed "
                 f"{summary['fixed_accuracy']:.2%}")
    print(f"{line}; float and fixed predictions agree on "
          f"{summary['prediction_agreement']:.2%}")
    print(f"wrote {out / 'eval.npz'} (float_logits, fixed_logits) and {out / 'eval.json'}")
    return 0


# -- routing of verilog / cosim / build ------------------------------------------------------

def extend_parser(command, parser):
    """Add the network-only options to ``verilog``/``cosim``/``build``."""
    if command not in ("verilog", "cosim", "build"):
        return
    # --lanes of a core defaults to 4; a network's default is the mapping's (16 per layer,
    # capped at each layer's size): route() fills in whichever applies.
    parser.set_defaults(lanes=None)
    group = parser.add_argument_group("with --model NETWORK.npz (a trained network)")
    if command == "cosim":
        group.add_argument("--inputs", metavar="X.npy",
                           help="network inputs x (n x input shape); default: the test data")
    group.add_argument("--in-lanes", type=int, default=None,
                       help="input values per beat of the first layer (default 8)")
    group.add_argument("--bits", type=int, default=16,
                       help="width when the model has no stored formats (default 16)")


def route(args):
    """The network handler for ``args`` when ``--model`` is a network file, else ``None``."""
    from golden.modelfile import is_network_file
    if args.command not in ("verilog", "cosim", "build"):
        return None
    model = getattr(args, "model", None)
    if not model or not Path(model).is_file() or not is_network_file(model):
        if getattr(args, "lanes", 4) is None:
            args.lanes = CORE_LANES
        return None
    return {"verilog": _verilog, "cosim": _cosim, "build": _build}[args.command]


#: ``--lanes`` of a single LIF array (a core file or the built-in example) by default.
CORE_LANES = 4


def _mapping(args, inet, flow="stall"):
    from hdl.mapping import HardwareMapping
    lanes = getattr(args, "lanes", None)
    return HardwareMapping.for_network(inet, lanes=lanes, in_lanes=args.in_lanes, flow=flow)


def _network_flow(args, target=None):
    """``--flow`` of a network: the flow of its dense engines and LIF arrays (conv stages
    are the same in both). ``auto`` is :func:`boards.top.flow_for` of the board
    (credit on ECP5, stall on iCE40), stall without one."""
    flow = getattr(args, "flow", None) or "auto"
    if flow == "auto":
        if target is None:
            return "stall"
        from boards.top import flow_for
        return flow_for(target)
    return flow


def _verilog(args):
    from hdl.network import export_network_verilog
    model = load_model(args.model)
    out = out_dir(args.out)
    inet = integer_network(model, args.bits)
    mapping = _mapping(args, inet)
    name = args.name if args.name != "spikefold_lif_array" else "spikefold_network"
    v, j = export_network_verilog(inet, mapping, out, name=name)
    print(f"wrote {v} and {j} ({'-'.join(map(str, model.network.sizes))} network, "
          f"lanes {list(mapping.lanes)}, in_lanes {mapping.in_lanes})")
    return 0


def _cosim(args):
    import time

    from sim.runner import simulator
    t0 = time.perf_counter()
    check_args(args)
    sim = simulator(args.sim)
    model = load_model(args.model)
    x, y = model_inputs(model, args.inputs, None, None)
    out = out_dir(args.out)
    n = args.samples if args.samples else len(x)
    x = x[:n]
    y = None if y is None else y[:n]
    inet = integer_network(model, args.bits)
    mapping = _mapping(args, inet, _network_flow(args))
    report = cosim_report(model, inet, x, y, mapping, seed=args.seed,
                          gaps=args.gaps, backpressure=args.backpressure, sim=sim,
                          progress=True, out=out, model_name=args.model)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=_json) + "\n")
    first = report["first_mismatch"]
    print(f"{report['samples']} samples, {report['compared']} values compared, "
          f"{report['mismatches']} mismatches"
          + ("" if first is None else f"; first: {json.dumps(first)}"))
    print(f"wrote {out / 'report.json'}, {out / 'report.html'} and {out / 'report.md'} "
          f"({sim}; {time.perf_counter() - t0:.1f} s)")
    return 0 if report["mismatches"] == 0 else 1


def _build(args):
    from boards.build import build_network
    from boards.targets import get_target
    model = load_model(args.model)
    target = get_target(args.board)
    out = out_dir(args.out or Path("build") / f"{target.name}-network")
    inet = integer_network(model, args.bits)
    mapping = _mapping(args, inet, _network_flow(args, target))
    info = build_network(inet, mapping, target, out, freq=args.freq, plan_only=args.plan_only)
    print(f"wrote {out / 'build.json'}")
    return 0 if info else 1


def _json(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON: {value!r}")


def cosim_report(model, inet, x, y, mapping, *, seed=0, gaps=0.0, backpressure=0.0, sim=None,
                 progress=False, out=None, model_name=None):
    """Co-simulate ``x`` on the network RTL (cocotb on ``sim``: Icarus or Verilator) against
    ``inet``; the dict ``spikefold cosim --model`` writes as ``report.json``: ``compared``,
    ``mismatches``, ``first_mismatch`` ({sample, layer, t, neuron, field, expected, got} or
    null), ``layers`` (per-layer compared/mismatches), accuracies and cycles. With ``out``
    also ``out/report.html`` and ``out/report.md`` (:mod:`sim.netreport`; their tables
    under ``network_report``)."""
    from sim.network_cosim import cycle_figures, run_network_cocotb
    result = run_network_cocotb(inet, x, mapping=mapping, seed=seed, gaps=gaps,
                                backpressure=backpressure, run_name=f"cosim-{seed}-{len(x)}",
                                sim=sim, progress=progress)
    rtl = np.array(result["labels"] + [-1] * (len(x) - len(result["labels"])))
    golden_pred = np.array(result["want_label"])
    report = {
        "model": model_name or getattr(model, "path", None), "samples": int(len(x)),
        "compared": result["compared"], "mismatches": result["mismatches"],
        "first_mismatch": result["first_mismatch"], "layers": result["layers"],
        "mismatches_per_sample": result["mismatches_per_sample"],
        "rtl_labels": rtl.tolist(), "golden_labels": golden_pred.tolist(),
        **cycle_figures(result), "mapping": mapping.to_json(),
        "sim_s": result["sim_s"], "build_s": result["build_s"],
        "directory": result["directory"], "simulator": result["simulator"],
        "cycles": result.get("cycles"),
    }
    float_pred = model.network.forward(x).predict()
    if y is not None:
        report["labels"] = y.tolist()
        report["float_accuracy"] = float(np.mean(float_pred == y))
        report["fixed_accuracy"] = float(np.mean(golden_pred == y))
        report["rtl_accuracy"] = float(np.mean(rtl == y))
    if out is not None:
        from sim.netreport import load_run, write_network_report
        golden, recorded = load_run(result["directory"])
        report["network_report"] = write_network_report(
            out, report, inet, x, golden, recorded, mapping=mapping, float_labels=float_pred,
            labels=y, title="spikefold cosim --model"
            + (f" {Path(str(report['model'])).name}" if report["model"] else ""))
    return report
