"""Co-simulate a whole network (``hdl.network.SpikingNetwork``) with cocotb on Icarus or
Verilator (``sim`` argument, else ``$SPIKEFOLD_SIM``: :func:`sim.runner.simulator`).

:func:`cosim_network` is the one call ``spikefold demo`` needs: a model file and N test
samples in, accuracies (float, golden integer, RTL), RTL-vs-golden mismatches per sample
and cycles per image out. :func:`run_network_cocotb` is the lower level: any
:class:`golden.network.IntegerNetwork` and quantized inputs.

Layout under the (gitignored) build root, ``build/cosim-network`` by default::

    <root>/<key>/                 one exported network (key = hash of its Verilog + JSON)
        spikefold_network.v/.json
        sim/, sim-verilator/      Icarus / Verilator build made by cocotb_tools.runner
        run-<seed>-<n>/           plan.json, samples.npz (golden), result.json, rtl.npz
                                  (what the RTL produced, :mod:`sim.cocotb_netrecord`),
                                  progress.json, sim.log
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["cosim_network", "run_network_cocotb", "prepare_network_rtl", "golden_layers",
           "cycle_figures",
           "random_network", "random_pixels", "DEFAULT_ROOT"]

DEFAULT_ROOT = Path("build") / "cosim-network"
TOP = "spikefold_network"


def _mapping(inet, mapping, lanes, in_lanes, outreg):
    """One :class:`hdl.mapping.HardwareMapping` from the new (``mapping``) or the old
    (``lanes``) keyword."""
    from hdl.mapping import HardwareMapping
    if mapping is not None and lanes is not None:
        raise ValueError("give mapping or lanes, not both")
    return HardwareMapping.for_network(inet, mapping if mapping is not None else lanes,
                                       in_lanes, outreg)


def prepare_network_rtl(inet, mapping=None, *, lanes=None, in_lanes=None, outreg=None,
                        root=None):
    """Export ``inet`` into ``<root>/<key>/`` (reused when identical); returns the dir."""
    from hdl.network import export_network_verilog
    mapping = _mapping(inet, mapping, lanes, in_lanes, outreg)
    root = Path(root) if root is not None else DEFAULT_ROOT
    with tempfile.TemporaryDirectory() as tmp:
        v, j = export_network_verilog(inet, mapping, tmp, name=TOP)
        text, desc = v.read_text(), j.read_text()
    key = hashlib.sha256((text + desc).encode()).hexdigest()[:12]
    directory = root / key
    directory.mkdir(parents=True, exist_ok=True)
    for suffix, content in ((".v", text), (".json", desc)):
        path = directory / f"{TOP}{suffix}"
        if not path.exists() or path.read_text() != content:
            path.write_text(content)
    return directory


def golden_layers(inet, x):
    """Golden per-sample results of ``x`` and, per LIF layer ``l`` (its stage index: a
    dense or conv layer with a neuron), ``spikes<l>`` and ``v_pre<l>`` (T, S, neurons,
    flattened channel-major): what the co-simulation compares at every timestep."""
    res = inet.run(x, per_sample=True)
    arrays = {}
    for l, (layer, trace) in enumerate(zip(inet.layers, res.traces)):
        if trace.spikes is None:
            continue                      # readout, pooling, flatten: no LIF array
        T, S = trace.current.shape[:2]
        c = trace.current.reshape(T, S, -1)
        v_pre = np.empty(c.shape, dtype=np.int64)
        for s in range(S):
            core = layer.core()
            for t in range(T):
                v_pre[t, s] = core.step(c[t, s]).v_pre
        arrays[f"spikes{l}"] = trace.spikes.reshape(T, S, -1).astype(np.uint8)
        arrays[f"v_pre{l}"] = v_pre
    return res, arrays


def run_network_cocotb(inet, x, *, mapping=None, lanes=None, in_lanes=None, outreg=None,
                       seed=0, gaps=0.0, backpressure=0.0, root=None, run_name=None,
                       golden=None, sim=None, progress=False):
    """Run float inputs ``x`` (S, n_in) through the RTL of ``inet``; returns a dict.

    ``mapping`` (or the older ``lanes``, with ``in_lanes`` and ``outreg``): as
    :class:`hdl.network.SpikingNetwork`. The expected results come from ``golden``
    (default ``inet`` itself; another network only to check that the comparison catches a
    difference). ``sim``: ``"icarus"`` or ``"verilator"`` (default
    :func:`sim.runner.simulator`). ``progress``: show samples done and simulated cycles on
    stderr while the simulator runs (when stderr is a terminal).

    The dict is the cocotb test's ``result.json``: ``compared``, ``mismatches`` (=
    ``total_mismatches``), ``first_mismatch`` ({sample, layer, t, neuron, field, expected,
    got, cycle} or None), ``layers`` (per layer ``compared``/``mismatches``: every hidden
    layer's spikes and membranes at every timestep, the readout's logits and class),
    ``mismatches_per_sample``, labels, logits, cycles; plus golden's
    ``want_label``/``want_logits``, ``directory``, ``build_s``, ``sim_s``, ``simulator``,
    the mapping. ``directory/rtl.npz`` holds every value the RTL produced and the cycle of
    every LIF output beat (:mod:`sim.cocotb_netrecord`). A run that produced no result
    raises ``RuntimeError`` with the log's tail.
    """
    from sim.cocotb_network import PLAN_ENV
    from sim.progress import SimProgress
    from sim.runner import run_sim, simulator
    sim = simulator(sim)
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    mapping = _mapping(inet, mapping, lanes, in_lanes, outreg)
    directory = prepare_network_rtl(inet, mapping, root=root)
    desc = json.loads((directory / f"{TOP}.json").read_text())
    x_q, _ = inet.quantize_input(x)
    res, layers = golden_layers(inet if golden is None else golden, x)
    run_dir = directory / (run_name or f"run-{seed}-{len(x)}")
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    np.savez(run_dir / "samples.npz", x_q=x_q, logits=res.logits_q, label=res.predict(),
             **layers)
    slow = max(1e-3, (1 - gaps) * (1 - backpressure))
    sizes = desc["sizes"]
    per_sample = (sum(a * -(-b // p) for a, b, p in zip(sizes[:-1], sizes[1:], desc["lanes"]))
                  * inet.T + 4 * sum(sizes) + 100)
    plan = {"rtl_json": os.path.relpath(directory / f"{TOP}.json", run_dir),
            "samples": "samples.npz", "seed": int(seed), "gaps": float(gaps),
            "backpressure": float(backpressure), "result": "result.json",
            "max_cycles": int(per_sample * (len(x) + 2) / slow)}
    (run_dir / "plan.json").write_text(json.dumps(plan, indent=1))
    sim_dir = directory / ("sim" if sim == "icarus" else f"sim-{sim}")
    with SimProgress(run_dir, len(x), f"co-simulation ({sim})", enabled=progress):
        result, build_s, sim_s = run_sim([(directory / f"{TOP}.v").resolve()], TOP, sim_dir,
                                         run_dir, "sim.cocotb_netrecord", PLAN_ENV,
                                         seed=seed, sim=sim)
    result.update(want_label=[int(v) for v in res.predict()],
                  want_logits=res.logits_q.tolist(), directory=str(run_dir),
                  build_s=build_s, sim_s=sim_s, simulator=sim, **mapping.to_json())
    return result


def cycle_figures(result):
    """Latency per image (first pixel accepted -> result; samples stream back to back, so
    later samples also wait for earlier ones: ``latency_cycles_first`` is the latency of an
    idle pipeline) and the steady-state interval between results, in cycles."""
    first, done = result["first_in"], result["result_cycle"]
    latency = [d - f + 1 for f, d in zip(first, done)]
    interval = (float(np.mean(np.diff(done))) if len(done) > 1 else None)
    return {"latency_cycles": latency,
            "latency_cycles_first": latency[0] if latency else None,
            "cycles_per_image": interval}


def cosim_network(model_path=None, samples=8, out_dir=None, *, mapping=None, lanes=None,
                  in_lanes=None, outreg=None, seed=0, gaps=0.0, backpressure=0.0, sim=None,
                  progress=False):
    """Run a model file's test samples on the RTL and compare with golden.

    Parameters
    ----------
    model_path : path or None
        A ``spikefold-network`` model file with formats and test data (default: the
        embedded digits model).
    samples : int or sequence of int
        The first ``samples`` test samples, or these test-sample indices.
    out_dir : path or None
        Build root (default ``build/cosim-network``).
    mapping : hdl.mapping.HardwareMapping or None
        Default: ``HardwareMapping.for_network`` of the model (the older ``lanes``,
        ``in_lanes``, ``outreg`` keywords go there too).
    sim, progress
        As :func:`run_network_cocotb`.

    Returns
    -------
    dict
        ``samples``, ``float_accuracy``, ``fixed_accuracy`` (golden integer),
        ``rtl_accuracy``, ``compared`` (values compared: every hidden layer's spikes and
        membranes at every timestep, logits, class), ``mismatches`` (their total, also
        ``total_mismatches``), ``first_mismatch`` ({sample, layer, t, neuron, field,
        expected, got, cycle} or None), ``layers`` (per-layer ``compared`` /
        ``mismatches``), ``mismatches_per_sample``, ``cycles_per_image`` (steady state,
        samples back to back), ``latency_cycles`` (per sample, first pixel accepted to
        result, queueing included), ``latency_cycles_first`` (idle pipeline) and
        ``latency_us`` (of the first sample) at 50 and 100 MHz, ``sim_s``, ``directory``,
        ``simulator``; per sample ``index`` (test-sample indices), ``labels`` (true),
        ``float_labels``, ``golden_labels``, ``rtl_labels`` (-1: no result).
    """
    from golden.modelfile import ModelFile, load_default
    model = load_default() if model_path is None else ModelFile.load(model_path)
    if model.test_x is None:
        raise ValueError("the model file has no test data (data.test_x)")
    n_test = len(model.test_x)
    if isinstance(samples, (int, np.integer)) and not isinstance(samples, bool):
        if not 1 <= samples <= n_test:
            raise ValueError(f"samples must be in 1..{n_test}, not {samples!r}")
        index = np.arange(int(samples))
    else:
        index = np.asarray(list(samples), dtype=np.int64)
        if index.size == 0 or np.any((index < 0) | (index >= n_test)):
            raise ValueError(f"sample indices must be in 0..{n_test - 1}, not {samples!r}")
    x = model.inputs(model.test_x[index])
    y = model.test_y[index]
    inet = model.integer()
    float_pred = model.network.forward(x).predict()
    mapping = _mapping(inet, mapping, lanes, in_lanes, outreg)
    result = run_network_cocotb(inet, x, mapping=mapping, seed=seed, gaps=gaps,
                                backpressure=backpressure, root=out_dir, sim=sim,
                                progress=progress)
    rtl = np.array(result["labels"] + [-1] * (len(index) - len(result["labels"])))
    fixed = np.array(result["want_label"])
    figures = cycle_figures(result)
    lat = figures["latency_cycles_first"]
    report = {
        "samples": int(len(index)),
        "float_accuracy": float(np.mean(float_pred == y)),
        "fixed_accuracy": float(np.mean(fixed == y)),
        "rtl_accuracy": float(np.mean(rtl == y)),
        "compared": result["compared"],
        "mismatches": result["mismatches"],
        "total_mismatches": result["total_mismatches"],
        "first_mismatch": result["first_mismatch"],
        "layers": result["layers"],
        "mismatches_per_sample": result["mismatches_per_sample"],
        **figures,
        "latency_us": None if lat is None else {"50MHz": lat / 50.0, "100MHz": lat / 100.0},
        **mapping.to_json(), "T": inet.T,
        "sim_s": result["sim_s"], "build_s": result["build_s"],
        "directory": result["directory"], "simulator": result["simulator"],
        "cycles": result.get("cycles"),
        "index": index.tolist(), "labels": y.tolist(), "float_labels": float_pred.tolist(),
        "golden_labels": fixed.tolist(), "rtl_labels": rtl.tolist(),
    }
    return report


def random_network(sizes=(784, 128, 10), *, T=4, weight_bits=8, bits=16, input_bits=8, seed=0):
    """A random MPBN network of the given shape (:func:`golden.examples.example_network`),
    calibrated on random pixel inputs: the stand-in for Spiker+'s MNIST 784-128-10 design
    (cycle counts and synthesis only)."""
    from golden.calibrate import calibrate
    from golden.examples import example_network
    from golden.network import IntegerNetwork
    net = example_network(sizes, T=T, seed=seed)
    calib = random_pixels(sizes[0], 64, seed=seed + 1)
    formats = calibrate(net, calib, bits=bits, weight_bits=weight_bits, input_bits=input_bits)
    return IntegerNetwork.from_folded(net.fold(), formats)


def random_pixels(n_in, count, *, nonzero=1.0, seed=0):
    """``count`` analog inputs in ``[0, 1]``; a fraction ``1 - nonzero`` of pixels is 0
    (MNIST: about 0.19 non-zero)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 256, (count, n_in)) / 255.0
    x[rng.random(x.shape) >= nonzero] = 0.0
    return x
