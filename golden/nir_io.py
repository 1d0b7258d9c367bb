"""NIR (Neuromorphic Intermediate Representation) export and import of folded networks.

Needs the ``nir`` package (the ``[train]`` extra); it is imported when a function runs.

Graph shape (both directions)::

    input -> fc0 (Affine) -> lif0 (LIF) -> ... -> fcL (Affine) -> output

The readout is integrate-only (paper Eq. 3): the network's logits are the **mean over the T
timesteps** of the values arriving at ``output``; the input is fed unchanged at every
timestep (direct encoding). Both facts, ``T`` and ``dt`` are written into the graph's
``metadata`` (``spikefold_T``, ``spikefold_dt``, ``spikefold_readout``,
``spikefold_encoding``).

Time constants. NIR's LIF is continuous-time, ``tau dv/dt = (v_leak - v) + r I``, fire on
``v > v_threshold``, then ``v = v_reset``. We discretize with forward Euler at step ``dt``
(as snnTorch's NIR export/import does, ``beta = 1 - dt/tau``)::

    v[t] = (1 - dt/tau) * v[t-1] + (dt/tau) * (v_leak + r * I[t])

so the decay factor of the MPBN paper is ``tau_decay = 1 - dt / tau_nir``. Export writes
``tau_nir = dt / (1 - tau_decay)``, ``r = tau_nir / dt`` (unit input gain), ``v_leak = 0``,
``v_reset = 0`` (hard reset to zero). Import folds the gain ``r * dt / tau`` into the
incoming weights and bias and ``(dt / tau) * v_leak`` into the bias; because ``dt / tau``
carries float rounding noise (snnTorch exports float32), a decay within float32 precision
(4 float32 ulps) of a short binary fraction ``k / 2**j`` (``j <= 12``, the shortest wins) is
snapped to it (any other decay is kept as it is), and a gain within 4 float32 ulps of 1
becomes exactly 1: snnTorch's ``0.2500000083`` imports as the shift leak ``0.25``.

dt is stated on both sides: :func:`to_nir` needs it (snnTorch's ``import_from_nir`` assumes
``dt = 1e-4``; pass that for snnTorch) and writes it as ``spikefold_dt``; :func:`from_nir`
takes the graph's ``spikefold_dt`` or an explicit ``dt`` and refuses a graph with neither, or
with both disagreeing. Each LIF layer keeps its own decay (a per-layer neuron).

Reset mode. NIR's LIF resets to ``v_reset``; it cannot say "subtract". snnTorch's NIR export
writes its default subtract-reset ``Leaky`` as such a LIF, so :func:`from_nir` warns
(``UserWarning``) on a graph that was not written by spikefold (no ``spikefold_reset``).

Firing rules. NIR compares ``v > v_threshold`` only, so:

* ``GT`` neurons export their threshold as is;
* ``LT`` neurons (MPBN with ``gamma < 0``) are made positive: their incoming weight row and
  bias are negated and the threshold becomes ``-theta``. With hard reset to zero the
  membrane of the new neuron is exactly ``-u`` at every step, and ``u < theta`` iff
  ``-u > -theta``: the spikes are identical;
* ``NEVER`` neurons (gamma = 0, beta <= v_th) get ``v_threshold = +inf`` and ``ALWAYS``
  neurons (gamma = 0, beta > v_th) ``v_threshold = -inf`` -- exact, since a finite membrane
  is never above +inf and always above -inf. Import maps +-inf back.

Per-timestep normalizers (BNTT, TEBN, TAB, temporal homeostatic) have no NIR node: export
refuses them with ``ValueError``. A graph whose last stage is a LIF (a spiking readout) or
that branches is refused on import.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from .fold import Compare, ThresholdRule
from .layers import Neuron
from .network import FoldedLayer, FoldedNetwork, Network

__all__ = ["to_nir", "from_nir", "write_nir", "read_nir", "snap_float32", "RESET_WARNING"]

_ULPS = 4                # float32 ulps within which a value snaps
_DECAY_BITS = 12       # short binary fractions k / 2**j, j <= 12 (0.25, 0.875, ...)

RESET_WARNING = ("NIR does not record the reset mode: this graph's LIFs are imported with "
                 "reset to v_reset. snnTorch's NIR export writes its default subtract-reset "
                 "Leaky the same way; if the model was trained with subtract reset this is a "
                 "different network (import the snnTorch module itself: spikefold import)")


def _nir():
    try:
        import nir
    except ModuleNotFoundError as exc:
        raise RuntimeError("NIR support needs the 'nir' package: pip install -e '.[train]'") \
            from exc
    return nir


def to_nir(network, *, dt):
    """Export a :class:`Network` (folded first) or :class:`FoldedNetwork` as a NIR graph.

    ``dt`` (required) is the Euler step the graph states; snnTorch's importer assumes 1e-4.
    """
    nir = _nir()
    folded = network.fold() if isinstance(network, Network) else network
    if not isinstance(folded, FoldedNetwork):
        raise TypeError(f"network must be a Network or FoldedNetwork, not "
                        f"{type(network).__name__}")
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number, not {dt!r}")
    nodes = {"input": nir.Input(input_type={"input": np.array([folded.layers[0].n_in])})}
    edges = []
    prev = "input"
    for i, layer in enumerate(folded.layers):
        if layer.affine is not None:
            raise ValueError(
                f"layer{i} has a per-timestep affine stage (BNTT, TEBN, TAB or temporal "
                f"homeostatic norm); NIR has no per-timestep node, so this network cannot be "
                f"exported")
        weight = layer.weight.copy()
        bias = layer.bias.copy()
        name = f"fc{i}"
        if not layer.readout:
            neuron = folded.neuron(i)
            if neuron.tau >= 1.0:
                raise ValueError(f"layer{i}: tau = {neuron.tau!r} (no leak) has no finite NIR "
                                 f"LIF time constant")
            if neuron.reset != "zero":
                raise ValueError(f"layer{i}: {neuron.reset} reset cannot be expressed in NIR "
                                 f"(its LIF resets to v_reset)")
            if getattr(neuron, "fire", ">") != ">":
                raise ValueError(f"layer{i}: fire {neuron.fire!r}: NIR's LIF fires on >")
            rule = layer.rule
            threshold = rule.theta.copy()
            lt = rule.compare == Compare.LT
            weight[lt] *= -1.0
            bias[lt] *= -1.0
            threshold[lt] *= -1.0
            threshold[rule.compare == Compare.NEVER] = np.inf
            threshold[rule.compare == Compare.ALWAYS] = -np.inf
        nodes[name] = nir.Affine(weight=weight, bias=bias)
        edges.append((prev, name))
        prev = name
        if not layer.readout:
            n = layer.n_out
            tau_nir = np.full(n, dt / (1.0 - folded.neuron(i).tau))
            nodes[f"lif{i}"] = nir.LIF(tau=tau_nir, r=tau_nir / dt, v_leak=np.zeros(n),
                                       v_threshold=threshold, v_reset=np.zeros(n))
            edges.append((prev, f"lif{i}"))
            prev = f"lif{i}"
    nodes["output"] = nir.Output(output_type={"output": np.array([folded.layers[-1].n_out])})
    edges.append((prev, "output"))
    metadata = {"spikefold_T": int(folded.T), "spikefold_dt": dt, "spikefold_reset": "zero",
                "spikefold_readout": "mean over T of output",
                "spikefold_encoding": "direct"}
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def _chain(graph):
    """Node names from the single Input to the single Output, refusing branches."""
    nir = _nir()
    inputs = [k for k, v in graph.nodes.items() if isinstance(v, nir.Input)]
    if len(inputs) != 1:
        raise ValueError(f"the graph must have exactly one Input node, not {len(inputs)}")
    succ = {}
    for a, b in graph.edges:
        a, b = str(a), str(b)
        for end in (a, b):
            if end not in graph.nodes:
                raise ValueError(f"edge ({a!r}, {b!r}) names an unknown node {end!r}")
        if a in succ:
            raise ValueError(f"node {a!r} has more than one successor; only chains import")
        succ[a] = b
    order = [inputs[0]]
    while order[-1] in succ:
        nxt = succ[order[-1]]
        if nxt in order:
            raise ValueError(f"the graph has a cycle through {nxt!r}")
        order.append(nxt)
    if len(order) != len(graph.nodes):
        missing = sorted(set(graph.nodes) - set(order))
        raise ValueError(f"nodes {missing} are not on the path from Input to Output")
    if not isinstance(graph.nodes[order[-1]], nir.Output):
        raise ValueError(f"the path from Input ends at {order[-1]!r}, not at an Output node")
    return order


def snap_float32(value, bits=_DECAY_BITS):
    """``value`` snapped to the shortest ``k / 2**j`` (``j <= bits``) within 4 float32 ulps."""
    value = float(value)
    tol = _ULPS * float(np.spacing(np.float32(abs(value))))
    for j in range(bits + 1):
        snapped = round(value * 2.0 ** j) / 2.0 ** j
        if abs(value - snapped) <= tol:
            return snapped
    return value


def from_nir(graph, *, T=None, dt=None):
    """Import a NIR graph of Affine/Linear + LIF layers as a :class:`FoldedNetwork`.

    Parameters
    ----------
    graph : nir.NIRGraph
    T : int or None
        Timesteps; default the graph's ``spikefold_T`` metadata (required otherwise).
    dt : float or None
        Discretization step; default the graph's ``spikefold_dt`` metadata. A graph without
        it (snnTorch's export: 1e-4) needs ``dt``; both given must agree.
    """
    nir = _nir()
    if not isinstance(graph, nir.NIRGraph):
        raise TypeError(f"graph must be a nir.NIRGraph, not {type(graph).__name__}")
    meta = dict(graph.metadata or {})
    if T is None:
        T = meta.get("spikefold_T")
        if T is None:
            raise ValueError("the graph does not record T (spikefold_T): pass T")
    T = int(np.asarray(T))
    if T < 1:
        raise ValueError(f"T must be a positive integer, not {T!r}")
    stated = meta.get("spikefold_dt")
    if dt is None and stated is None:
        raise ValueError("the graph does not record dt (spikefold_dt): pass dt, the step it "
                         "was exported with (snnTorch's export_to_nir uses 1e-4)")
    if dt is not None and stated is not None and \
            not math.isclose(float(dt), float(np.asarray(stated)), rel_tol=1e-9):
        raise ValueError(f"dt = {dt!r} but the graph states spikefold_dt = "
                         f"{float(np.asarray(stated))!r}")
    dt = float(np.asarray(stated if dt is None else dt))
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number, not {dt!r}")
    if "spikefold_reset" not in meta:
        warnings.warn(RESET_WARNING, stacklevel=2)
    order = _chain(graph)
    stages = order[1:-1]
    layers = []
    first_decay = None
    i = 0
    while i < len(stages):
        name = stages[i]
        node = graph.nodes[name]
        if isinstance(node, nir.Affine):
            weight = np.asarray(node.weight, dtype=np.float64)
            bias = np.asarray(node.bias, dtype=np.float64)
        elif isinstance(node, nir.Linear):
            weight = np.asarray(node.weight, dtype=np.float64)
            bias = np.zeros(weight.shape[0])
        else:
            raise ValueError(f"node {name!r} is a {type(node).__name__}; expected Affine or "
                             f"Linear (supported: Input, Affine, Linear, LIF, Output)")
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise ValueError(f"node {name!r}: weight {weight.shape} and bias {bias.shape} do not "
                             f"form a dense layer")
        if not (np.all(np.isfinite(weight)) and np.all(np.isfinite(bias))):
            raise ValueError(f"node {name!r} holds NaN or infinite weights")
        if layers and weight.shape[1] != layers[-1].n_out:
            raise ValueError(f"node {name!r} has {weight.shape[1]} inputs but the previous layer "
                             f"has {layers[-1].n_out} neurons")
        last = i == len(stages) - 1
        if last:
            layers.append(FoldedLayer(weight, bias, None))
            break
        lif_name = stages[i + 1]
        lif = graph.nodes[lif_name]
        if not isinstance(lif, nir.LIF):
            raise ValueError(f"node {lif_name!r} after {name!r} is a {type(lif).__name__}; "
                             f"expected LIF")
        if i + 2 >= len(stages):
            raise ValueError(
                f"the graph ends with LIF {lif_name!r} (a spiking readout); spikefold reads out "
                f"integrate-only: the last stage before Output must be Affine or Linear")
        n = weight.shape[0]
        params = {}
        for key in ("tau", "r", "v_leak", "v_threshold", "v_reset"):
            value = getattr(lif, key)
            value = np.zeros(n) if value is None else np.asarray(value, dtype=np.float64)
            if value.shape != (n,):
                value = np.broadcast_to(value, (n,)).astype(np.float64) if value.size == 1 \
                    else value
            if value.shape != (n,):
                raise ValueError(f"LIF {lif_name!r}.{key} has shape {value.shape}, expected ({n},)")
            params[key] = value
        for key in ("tau", "r", "v_leak", "v_reset"):
            if not np.all(np.isfinite(params[key])):
                raise ValueError(f"LIF {lif_name!r}.{key} holds NaN or infinity")
        if np.any(params["tau"] <= 0):
            raise ValueError(f"LIF {lif_name!r}.tau must be > 0")
        if np.any(params["v_reset"] != 0):
            raise ValueError(f"LIF {lif_name!r}.v_reset must be 0 (hard reset to zero)")
        if np.any(np.isnan(params["v_threshold"])):
            raise ValueError(f"LIF {lif_name!r}.v_threshold holds NaN")
        step = dt / params["tau"]
        d = 1.0 - step
        d = np.array([snap_float32(v) for v in d])
        if np.ptp(d) > 0:
            raise ValueError(f"LIF {lif_name!r} has per-neuron decays {d.min()}..{d.max()}; the "
                             f"core has one decay per layer")
        d0 = float(d[0])
        if not 0.0 < d0 <= 1.0:
            raise ValueError(f"LIF {lif_name!r}: decay 1 - dt/tau = {d0!r} is outside (0, 1] "
                             f"(dt = {dt!r}); pass the dt the graph was made with")
        if first_decay is None:
            first_decay = d0
        gain = params["r"] * step
        gain = np.where(np.abs(gain - 1.0) <= _ULPS * 2.0 ** -24, 1.0, gain)
        weight = weight * gain[:, None]
        bias = bias * gain + step * params["v_leak"]
        thr = params["v_threshold"]
        compare = np.full(n, Compare.GT, dtype=np.int8)
        compare[thr == np.inf] = Compare.NEVER
        compare[thr == -np.inf] = Compare.ALWAYS
        theta = np.where(np.isfinite(thr), thr, 0.0)
        layers.append(FoldedLayer(weight, bias, ThresholdRule(theta, compare),
                                  neuron=Neuron(d0, 0.5, "zero")))
        i += 2
    if not layers:
        raise ValueError("the graph has no Affine/Linear layer between Input and Output")
    inputs = [v for v in graph.nodes.values() if isinstance(v, nir.Input)][0]
    shape = np.asarray(next(iter(inputs.input_type.values()))).ravel()
    if shape.size and int(np.prod(shape)) != layers[0].n_in:
        raise ValueError(f"the Input node has shape {shape.tolist()} but the first layer takes "
                         f"{layers[0].n_in} inputs")
    return FoldedNetwork(layers, T=T, tau=0.25 if first_decay is None else first_decay)


def write_nir(path, network, *, dt):
    """Export ``network`` and write it with ``nir.write`` (HDF5)."""
    _nir().write(Path(path), to_nir(network, dt=dt))


def read_nir(path, *, T=None, dt=None):
    """``nir.read`` + :func:`from_nir`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"NIR file {path} does not exist")
    return from_nir(_nir().read(path), T=T, dt=dt)
