"""NIR (Neuromorphic Intermediate Representation) export and import of folded networks.

Needs the ``nir`` package (the ``[train]`` extra); it is imported when a function runs.

Graph shape (both directions): a chain from one ``Input`` to one ``Output``::

    input -> conv0 (Conv2d) -> lif0 (LIF) -> pool1 (SumPool2d) -> ... -> flatten3 (Flatten)
          -> fc4 (Affine) -> output                     (an MLP: fc0 -> lif0 -> ... -> fcL)

=====================  ======================  =================================================
spikefold (folded)     NIR node(s)             notes
=====================  ======================  =================================================
``dense`` (LIF)        ``Affine`` + ``LIF``    import also takes ``Linear`` (bias 0)
``dense`` readout      ``Affine``              the last stage; logits = mean over T
``tau = 1`` (IF)       ``IF``                  ``dv/dt = r I``: Euler ``v += dt r I``, written
                                               with ``r = 1/dt`` (as SpikingJelly does; Norse's
                                               IAF adds ``I``); not for target ``"snntorch"``
                                               (its importer reads IF as ``beta = 0.9``)
``conv2d``             ``Conv2d`` + ``LIF``    square kernel, stride 1 or 2 (both axes equal),
                                               zero padding ``p < k`` (or ``"valid"``; ``"same"``
                                               for stride 1 and odd k), ``dilation = 1`` and
                                               ``groups = 1`` only (other values are refused
                                               naming the node and field); LIF parameters of
                                               shape ``(C, H, W)``
``pool2d`` sum         ``SumPool2d``           padding 0 only; square kernel and stride
``pool2d`` avg         ``SumPool2d`` (export)  the folded network already holds it as a sum
                       / ``AvgPool2d``         pooling with ``1/K`` in the next weights
                       (import)                (:func:`golden.layers.pool.absorb_average`)
``pool2d`` max         --                      NIR has no max pooling node: export refuses
``flatten``            ``Flatten``             channel-major; NIR shapes carry no batch axis,
                                               so only ``start_dim = 0, end_dim = -1`` (the
                                               whole ``(C, H, W)``) imports
=====================  ======================  =================================================

Every node's ``input_type``/``output_type`` is set (``Input`` ``(C, H, W)`` or ``(n,)``,
``Conv2d.input_shape`` ``(H, W)``, ``Flatten.input_type``) and the exported graph passes
``nir.NIRGraph.check_types``. All parameters are arrays (``nir.write`` cannot store
Python scalars).

The readout is integrate-only (paper Eq. 3): the network's logits are the **mean over the T
timesteps** of the values arriving at ``output``; the input is fed unchanged at every
timestep (direct encoding). ``T``, ``dt``, the reset mode and the export target are written
into the graph's ``metadata`` (``spikefold_T``, ``spikefold_dt``, ``spikefold_reset``,
``spikefold_target``, ``spikefold_readout``, ``spikefold_encoding``).

Time constants. NIR's LIF is continuous-time, ``tau dv/dt = (v_leak - v) + r I``, fire on
``v > v_threshold``, then ``v = v_reset``. We discretize with forward Euler at step ``dt``
(as snnTorch's NIR export/import and Norse do, ``beta = 1 - dt/tau``)::

    v[t] = (1 - dt/tau) * v[t-1] + (dt/tau) * (v_leak + r * I[t])

so the decay factor of the MPBN paper is ``tau_decay = 1 - dt / tau_nir``. Export writes
``tau_nir = dt / (1 - tau_decay)``, ``v_leak = 0``, ``v_reset = 0`` (hard reset to zero)
and, per target (``to_nir(..., target=...)``):

``"spikefold"`` (default)
    ``r = tau_nir / dt`` (unit input gain ``r dt / tau = 1``), per-neuron thresholds,
    ``SumPool2d``; any ``dt`` (required). Read back bit for bit by :func:`from_nir`.
``"snntorch"``
    What ``snntorch.import_nir.import_from_nir`` (1.0) reads exactly: ``dt = 1e-4`` (the step
    it assumes; another ``dt`` is refused), ``r = tau_nir / dt``, one threshold per layer
    (positive per-neuron thresholds are scaled into the weights: row ``i`` -- for a conv
    layer channel ``i`` -- times ``v/theta_i`` with ``v = max theta``; other per-neuron
    thresholds are refused), sum pooling as ``AvgPool2d`` with the window size ``K`` (a
    power of two, so exact) multiplied into the next weights.
``"norse"``
    What ``norse.torch.from_nir`` (1.1) reads exactly: Norse drops ``r`` (warning if it is
    not 1), so ``r = 1`` and the thresholds are scaled by the gain ``dt / tau_nir =
    1 - tau_decay`` instead (with reset to zero the Norse membrane is that multiple of
    spikefold's); ``SumPool2d``; default ``dt = 1e-3`` (Norse's default): pass the same
    ``dt`` to ``norse.torch.from_nir(graph, dt=dt)``.

Import folds the input gain ``g = r dt / tau`` (``g > 0``) into the threshold instead of
the weights: with reset to zero the NIR membrane is ``g`` times the membrane driven by
the unscaled weights, so ``v > theta`` iff ``u > theta / g`` (and ``v_leak`` enters the
bias as ``dt/tau * v_leak / g``). Weights are never rescaled, so a graph exported with
target ``"spikefold"`` comes back bit for bit. Because ``dt / tau`` carries float rounding
noise (snnTorch exports float32), a decay within float32 precision (4 float32 ulps) of a
short binary fraction ``k / 2**j`` (``j <= 12``, the shortest wins) is snapped to it (any
other decay is kept as it is), and a gain within 4 float32 ulps of 1 or of ``1 - decay``
becomes exactly that: snnTorch's ``0.2500000083`` imports as the shift leak ``0.25``.

dt is stated on both sides: :func:`to_nir` needs it for target ``"spikefold"`` and writes
it as ``spikefold_dt``; :func:`from_nir` takes the graph's ``spikefold_dt`` or an explicit
``dt`` and refuses a graph with neither, or with both disagreeing. Each LIF layer keeps
its own decay (a per-layer neuron); per-neuron decays are refused.

Reset mode. NIR's LIF resets to ``v_reset``; it cannot say "subtract". snnTorch's NIR export
writes its default subtract-reset ``Leaky`` as such a LIF, so :func:`from_nir` warns
(``UserWarning``) on a graph that was not written by spikefold (no ``spikefold_reset``).

Firing rules. NIR compares ``v > v_threshold`` only, so:

* ``GT`` neurons export their threshold as is;
* ``LT`` neurons (MPBN with ``gamma < 0``) are made positive: their incoming weight row and
  bias are negated and the threshold becomes ``-theta``. With hard reset to zero the
  membrane of the new neuron is exactly ``-u`` at every step, and ``u < theta`` iff
  ``-u > -theta``: the spikes are identical (in float; other readers see this neuron). The
  LIF node's metadata ``spikefold_negated`` lists the negated rows (conv: channels), and
  :func:`from_nir` negates them back to the original ``LT`` rule, bit for bit (the integer
  model is not odd-symmetric: floor shifts and rounding). A conv layer can only negate
  whole channels (its weights are shared): an element-wise rule mixing ``LT`` and other
  neurons in one channel is refused;
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
from .layers.conv2d import STRIDES, FoldedConv2d, conv_out_size
from .layers.dense import FoldedDense
from .layers.flatten import Flatten
from .layers.pool import Pool2d
from .network import FoldedNetwork, Network

__all__ = ["to_nir", "from_nir", "from_nir_sources", "write_nir", "read_nir", "snap_float32",
           "RESET_WARNING", "TARGETS", "SNNTORCH_DT", "NORSE_DT", "NEGATED"]

#: Export targets of :func:`to_nir` (module docstring).
TARGETS = ("spikefold", "snntorch", "norse")
#: The step snnTorch's ``import_from_nir`` assumes (and its ``export_to_nir`` writes).
SNNTORCH_DT = 1e-4
#: ``norse.torch.from_nir``'s default ``dt``.
NORSE_DT = 1e-3

#: LIF node metadata: the rows (conv: channels) whose weights, bias and threshold the
#: export negated (``LT`` neurons); :func:`from_nir` negates them back exactly.
NEGATED = "spikefold_negated"

_ULPS = 4                # float32 ulps within which a value snaps
_DECAY_BITS = 12       # short binary fractions k / 2**j, j <= 12 (0.25, 0.875, ...)

RESET_WARNING = ("NIR does not record the reset mode: this graph's LIFs are imported with "
                 "reset to v_reset. snnTorch's NIR export writes its default subtract-reset "
                 "Leaky the same way; if the model was trained with subtract reset this is a "
                 "different network (import the snnTorch module itself: spikefold import)")

_SUPPORTED = "Input, Affine, Linear, Conv2d, LIF, IF, SumPool2d, AvgPool2d, Flatten, Output"


def _nir():
    try:
        import nir
    except ModuleNotFoundError as exc:
        raise RuntimeError("NIR support needs the 'nir' package: pip install -e '.[train]'") \
            from exc
    return nir


def _pair(value):
    return np.array([int(value), int(value)])


# -- export -----------------------------------------------------------------------------------

def to_nir(network, *, dt=None, target="spikefold"):
    """Export a :class:`Network` (folded first) or :class:`FoldedNetwork` as a NIR graph.

    ``dt`` is the Euler step the graph states: required for ``target="spikefold"``;
    ``"snntorch"`` takes only 1e-4 (what snnTorch's importer assumes, the default there),
    ``"norse"`` defaults to 1e-3 (Norse's default; pass the same to ``norse.torch.from_nir``).
    ``target`` picks the representation (module docstring); every target's graph is valid
    NIR for the same network.
    """
    nir = _nir()
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, not {target!r}")
    folded = network.fold() if isinstance(network, Network) else network
    if not isinstance(folded, FoldedNetwork):
        raise TypeError(f"network must be a Network or FoldedNetwork, not "
                        f"{type(network).__name__}")
    if dt is None:
        if target == "spikefold":
            raise TypeError("to_nir() needs dt, the Euler step the graph states (snnTorch's "
                            "import_from_nir assumes 1e-4, Norse's from_nir defaults to 1e-3)")
        dt = SNNTORCH_DT if target == "snntorch" else NORSE_DT
    if isinstance(dt, bool) or not isinstance(dt, (int, float, np.floating)):
        raise ValueError(f"dt must be a positive number, not {dt!r}")
    dt = float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a positive number, not {dt!r}")
    if target == "snntorch" and dt != SNNTORCH_DT:
        raise ValueError(f"target 'snntorch': snnTorch's import_from_nir assumes dt = "
                         f"{SNNTORCH_DT!r}, not dt = {dt!r}")
    return _Export(nir, folded, dt, target).graph()


class _Export:
    """Builds the chain of NIR nodes for one folded network."""

    def __init__(self, nir, folded, dt, target):
        self.nir, self.folded, self.dt, self.target = nir, folded, dt, target
        self.nodes = {"input": nir.Input(input_type={"input": np.array(folded.input_shape)})}
        self.edges = []
        self.prev = "input"

    def add(self, name, node):
        self.nodes[name] = node
        self.edges.append((self.prev, name))
        self.prev = name

    def graph(self):
        nir, folded = self.nir, self.folded
        pending = 1.0          # snntorch: K of an AvgPool2d standing for a sum pooling
        shape = tuple(folded.input_shape)
        for i, layer in enumerate(folded.layers):
            where = f"layer{i}"
            if layer.kind == "pool2d":
                pending *= self.pool(i, layer)
            elif layer.kind == "flatten":
                self.add(f"flatten{i}", nir.Flatten(
                    input_type={"input": np.array(layer.in_shape)}, start_dim=0, end_dim=-1))
            elif layer.kind in ("dense", "conv2d"):
                if layer.affine is not None:
                    raise ValueError(
                        f"{where} has a per-timestep affine stage (BNTT, TEBN, TAB or temporal "
                        f"homeostatic norm); NIR has no per-timestep node, so this network "
                        f"cannot be exported")
                weight = np.array(layer.weight, dtype=np.float64) * pending
                bias = np.array(layer.bias, dtype=np.float64)
                pending = 1.0
                if layer.kind == "dense" and len(shape) > 1:   # dense flattens its input
                    self.add(f"flatten{i}", nir.Flatten(input_type={"input": np.array(shape)},
                                                        start_dim=0, end_dim=-1))
                if layer.readout:
                    self.add(f"fc{i}", nir.Affine(weight=weight, bias=bias))
                else:
                    weight, bias, lif = self.lif(i, layer, weight, bias, folded.neuron(i))
                    if layer.kind == "dense":
                        self.add(f"fc{i}", nir.Affine(weight=weight, bias=bias))
                    else:
                        self.add(f"conv{i}", nir.Conv2d(
                            input_shape=tuple(int(v) for v in layer.in_shape[1:]),
                            weight=weight, stride=_pair(layer.stride),
                            padding=_pair(layer.padding), dilation=_pair(1), groups=1,
                            bias=bias))
                    self.add(f"lif{i}", lif)
            else:
                raise ValueError(f"{where}: layer kind {layer.kind!r} has no NIR node")
            shape = tuple(layer.out_shape)
        self.add("output", nir.Output(output_type={"output": np.array(shape)}))
        metadata = {"spikefold_T": int(folded.T), "spikefold_dt": self.dt,
                    "spikefold_reset": "zero", "spikefold_target": self.target,
                    "spikefold_readout": "mean over T of output",
                    "spikefold_encoding": "direct"}
        graph = nir.NIRGraph(nodes=self.nodes, edges=self.edges, metadata=metadata)
        graph.infer_types()
        graph.check_types()
        return graph

    def pool(self, i, layer):
        """Add the pooling node; returns the factor the next weights must take."""
        nir, where = self.nir, f"layer{i}"
        if layer.mode == "max":
            raise ValueError(f"{where}: max pooling has no NIR node (NIR has SumPool2d and "
                             f"AvgPool2d only); use sum or avg pooling to export")
        k, s = int(layer.kernel), int(layer.stride)
        if self.target != "snntorch":
            self.add(f"pool{i}", nir.SumPool2d(kernel_size=_pair(k), stride=_pair(s),
                                               padding=_pair(0)))
            return 1.0
        K = k * k
        if K & (K - 1):
            raise ValueError(f"{where}: target 'snntorch' reads AvgPool2d, not SumPool2d, and "
                             f"a {k}x{k} sum as K * average is exact only for a power-of-two "
                             f"window, not K = {K} (use target 'spikefold' or 'norse')")
        self.add(f"pool{i}", nir.AvgPool2d(kernel_size=_pair(k), stride=_pair(s),
                                           padding=_pair(0)))
        return float(K)

    def lif(self, i, layer, weight, bias, neuron):
        """``(weight, bias, nir.LIF)`` of a spiking layer (rules in the module docstring)."""
        where = f"layer{i}"
        conv = layer.kind == "conv2d"
        if neuron.tau >= 1.0 and self.target == "snntorch":
            raise ValueError(f"{where}: tau = 1 (IF neuron): snnTorch 1.0's import_from_nir "
                             f"reads NIR's IF as a Leaky with beta = 0.9 (use target "
                             f"'spikefold' or 'norse')")
        if neuron.reset != "zero":
            raise ValueError(f"{where}: {neuron.reset} reset cannot be expressed in NIR (its "
                             f"LIF resets to v_reset)")
        if getattr(neuron, "fire", ">") != ">":
            raise ValueError(f"{where}: fire {neuron.fire!r}: NIR's LIF fires on >")
        rule = layer.rule
        theta = np.array(rule.theta, dtype=np.float64)
        compare = np.asarray(rule.compare)
        lt = compare == Compare.LT
        if np.any(lt):
            if conv:
                whole = lt.all(axis=(1, 2))
                mixed = lt.any(axis=(1, 2)) & ~whole
                if np.any(mixed):
                    c = int(np.argmax(mixed))
                    raise ValueError(
                        f"{where}: channel {c} mixes neurons firing on u < theta (MPBN gamma "
                        f"< 0, element-wise) with others; NIR's LIF fires on > only and a "
                        f"channel's shared weights cannot be negated for some neurons only")
                rows = whole
            else:
                rows = lt
            weight[rows] *= -1.0
            bias[rows] *= -1.0
            theta[lt] *= -1.0
        else:
            rows = None
        theta[compare == Compare.NEVER] = np.inf
        theta[compare == Compare.ALWAYS] = -np.inf
        if self.target == "snntorch":
            weight, bias, theta = _uniform_threshold(where, conv, weight, bias, theta)
        shape = theta.shape
        # ``meta``: which rows (conv: channels) were negated, so that our importer restores
        # the LT rule exactly: the integer model is not odd-symmetric (floor shifts, rounding).
        meta = {} if rows is None else {NEGATED: np.asarray(rows, dtype=np.int8)}
        if neuron.tau >= 1.0:
            # NIR's IF, dv/dt = r I, at Euler step dt: v += dt r I; r = 1/dt is unit gain
            # (as SpikingJelly writes it; Norse's IAF adds I and ignores r and dt).
            return weight, bias, self.nir.IF(r=np.full(shape, 1.0 / self.dt),
                                             v_threshold=theta, v_reset=np.zeros(shape),
                                             metadata=meta)
        tau_nir = self.dt / (1.0 - neuron.tau)
        if self.target == "norse":
            r = np.ones(shape)
            theta = theta * (self.dt / tau_nir)          # +-inf stay
        else:
            r = np.full(shape, tau_nir / self.dt)
        lif = self.nir.LIF(tau=np.full(shape, tau_nir), r=r, v_leak=np.zeros(shape),
                           v_threshold=theta, v_reset=np.zeros(shape), metadata=meta)
        return weight, bias, lif


def _uniform_threshold(where, conv, weight, bias, theta):
    """One threshold per layer (snnTorch's importer): positive per-row (per-channel)
    thresholds scaled into the weights."""
    if not np.all(np.isfinite(theta)):
        raise ValueError(f"{where}: never/always-firing neurons (MPBN gamma = 0) need "
                         f"thresholds of +-inf, and snnTorch's import_from_nir takes one "
                         f"threshold per layer (use target 'spikefold' or 'norse')")
    if np.all(theta == theta.flat[0]):
        return weight, bias, theta
    if conv:
        per = theta.reshape(theta.shape[0], -1)
        if np.any(np.ptp(per, axis=1) > 0):
            raise ValueError(f"{where}: element-wise thresholds vary within a channel; "
                             f"snnTorch's import_from_nir takes one threshold per layer and a "
                             f"channel's shared weights scale only as a whole (use target "
                             f"'spikefold' or 'norse')")
        t = per[:, 0]
    else:
        t = theta
    if np.any(t <= 0):
        raise ValueError(f"{where}: per-neuron thresholds down to {float(t.min())!r} <= 0; "
                         f"snnTorch's import_from_nir takes one threshold per layer and only "
                         f"positive thresholds scale into the weights (use target "
                         f"'spikefold' or 'norse')")
    v = float(t.max())
    k = v / t
    weight = weight * k.reshape((-1,) + (1,) * (weight.ndim - 1))
    return weight, bias * k, np.full(theta.shape, v)


# -- import -----------------------------------------------------------------------------------

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


def _snap_to(values, target):
    """``values`` equal to ``target`` where within 4 float32 ulps of it."""
    tol = _ULPS * float(np.spacing(np.float32(abs(target))))
    return np.where(np.abs(values - target) <= tol, target, values)


def from_nir(graph, *, T=None, dt=None):
    """Import a NIR graph (module docstring) as a :class:`FoldedNetwork`.

    Parameters
    ----------
    graph : nir.NIRGraph
    T : int or None
        Timesteps; default the graph's ``spikefold_T`` metadata (required otherwise).
    dt : float or None
        Discretization step; default the graph's ``spikefold_dt`` metadata. A graph without
        it (snnTorch's export: 1e-4) needs ``dt``; both given must agree.
    """
    return from_nir_sources(graph, T=T, dt=dt)[0]


def from_nir_sources(graph, *, T=None, dt=None):
    """``(FoldedNetwork, sources)``: :func:`from_nir` plus, per folded layer, the list of
    ``(node name, node type, conversions)`` it came from (the import table)."""
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
        warnings.warn(RESET_WARNING, stacklevel=3)
    order = _chain(graph)
    return _Import(nir, graph, order, T, dt).run()


def _type(node):
    return f"nir.{type(node).__name__}"


class _Import:
    """Walks the chain of a NIR graph into folded layers."""

    def __init__(self, nir, graph, order, T, dt):
        self.nir, self.graph, self.order, self.T, self.dt = nir, graph, order, T, dt
        self.layers = []
        self.sources = []
        self.ours = "spikefold_reset" in dict(graph.metadata or {})
        inp = graph.nodes[order[0]]
        shape = np.asarray(next(iter(inp.input_type.values()), None)
                           if inp.input_type else None)
        self.shape = (tuple(int(v) for v in shape.ravel())
                      if shape.ndim and shape.size else None)
        if self.shape is not None and any(v < 1 for v in self.shape):
            raise ValueError(f"the Input node has shape {list(self.shape)}")

    def run(self):
        stages = self.order[1:-1]
        i = 0
        while i < len(stages):
            name = stages[i]
            node = self.graph.nodes[name]
            last = i == len(stages) - 1
            if isinstance(node, (self.nir.Affine, self.nir.Linear, self.nir.Conv2d)):
                if last:
                    self.readout(name, node)
                    i += 1
                    continue
                lif_name = stages[i + 1]
                lif = self.graph.nodes[lif_name]
                if not isinstance(lif, (self.nir.LIF, self.nir.IF)):
                    raise ValueError(f"node {lif_name!r} after {name!r} is a "
                                     f"{type(lif).__name__}; expected LIF or IF")
                if i + 2 >= len(stages):
                    raise ValueError(
                        f"the graph ends with LIF {lif_name!r} (a spiking readout); spikefold "
                        f"reads out integrate-only: the last stage before Output must be "
                        f"Affine or Linear")
                self.spiking(name, node, lif_name, lif)
                i += 2
            elif isinstance(node, (self.nir.SumPool2d, self.nir.AvgPool2d)):
                self.pool(name, node)
                i += 1
            elif isinstance(node, self.nir.Flatten):
                self.flatten(name, node)
                i += 1
            elif isinstance(node, (self.nir.LIF, self.nir.IF)):
                raise ValueError(f"LIF {name!r} does not follow a synapse (Affine, Linear or "
                                 f"Conv2d)")
            else:
                raise ValueError(f"node {name!r} is a {type(node).__name__}; supported: "
                                 f"{_SUPPORTED}")
        if not self.layers or not self.layers[-1].readout:
            raise ValueError("the graph has no Affine/Linear readout as its last stage before "
                             "Output")
        decays = [layer.neuron.tau for layer in self.layers if getattr(layer, "neuron", None)]
        folded = FoldedNetwork(self.layers, T=self.T, tau=decays[0] if decays else 0.25)
        return folded, self.sources

    # -- synapses -------------------------------------------------------------------------

    def dense(self, name, node):
        if isinstance(node, self.nir.Affine):
            weight = np.array(node.weight, dtype=np.float64)
            bias = np.array(node.bias, dtype=np.float64)
        else:
            weight = np.array(node.weight, dtype=np.float64)
            bias = np.zeros(weight.shape[:1])
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise ValueError(f"node {name!r}: weight {weight.shape} and bias {bias.shape} do not "
                             f"form a dense layer")
        self.finite(name, weight, bias)
        n_in = weight.shape[1]
        if self.shape is None:
            self.shape = (n_in,)
        if int(np.prod(self.shape)) != n_in:
            what = ("the Input node has shape" if not self.layers else
                    "the previous layer gives")
            raise ValueError(f"node {name!r} has {n_in} inputs but {what} "
                             f"{list(self.shape)} ({int(np.prod(self.shape))} values)")
        return weight, bias

    def conv(self, name, node):
        weight = np.array(node.weight, dtype=np.float64)
        if weight.ndim != 4:
            raise ValueError(f"node {name!r}: Conv2d weight must be (C_out, C_in, k, k), not "
                             f"{weight.shape}")
        c_out, c_in, kh, kw = weight.shape
        if kh != kw:
            raise ValueError(f"node {name!r}: kernel {kh}x{kw} is not square")
        bias = (np.zeros(c_out) if node.bias is None
                else np.array(node.bias, dtype=np.float64).reshape(-1))
        if bias.shape != (c_out,):
            raise ValueError(f"node {name!r}: bias has shape {bias.shape}, expected ({c_out},)")
        self.finite(name, weight, bias)
        groups = np.asarray(node.groups).ravel()
        if groups.size != 1 or int(groups[0]) != 1:
            raise ValueError(f"node {name!r}: groups = {groups.tolist()} is not supported "
                             f"(only 1)")
        dilation = self.pair(name, "dilation", node.dilation)
        if dilation != (1, 1):
            raise ValueError(f"node {name!r}: dilation = {dilation} is not supported (only 1)")
        stride = self.pair(name, "stride", node.stride)
        if stride[0] != stride[1] or stride[0] not in STRIDES:
            raise ValueError(f"node {name!r}: stride = {stride} is not supported (1 or 2, equal "
                             f"in both axes)")
        if isinstance(node.padding, str) or (isinstance(node.padding, (bytes, np.ndarray))
                                             and np.asarray(node.padding).dtype.kind in "SUO"):
            mode = np.asarray(node.padding).ravel()[0]
            mode = mode.decode() if isinstance(mode, bytes) else str(mode)
            if mode == "valid":
                padding = (0, 0)
            elif mode == "same" and stride == (1, 1) and kh % 2 == 1:
                padding = ((kh - 1) // 2,) * 2
            else:
                raise ValueError(f"node {name!r}: padding = {mode!r} is not supported with "
                                 f"stride {stride} and kernel {kh} ('valid', 'same' for "
                                 f"stride 1 and an odd kernel, or integers)")
        else:
            padding = self.pair(name, "padding", node.padding)
        if padding[0] != padding[1] or not 0 <= padding[0] < kh:
            raise ValueError(f"node {name!r}: padding = {padding} is not supported (equal in "
                             f"both axes, 0 <= padding < kernel {kh})")
        spatial = None if node.input_shape is None else tuple(
            int(v) for v in np.asarray(node.input_shape).ravel())
        if self.shape is None:
            if spatial is None:
                raise ValueError(f"node {name!r}: neither the Input node nor the Conv2d states "
                                 f"the input shape")
            self.shape = (c_in,) + spatial
        if len(self.shape) != 3 or self.shape[0] != c_in:
            raise ValueError(f"node {name!r}: Conv2d takes (C_in = {c_in}, H, W) but receives "
                             f"shape {list(self.shape)}")
        if spatial is not None and spatial != tuple(self.shape[1:]):
            raise ValueError(f"node {name!r}: input_shape = {list(spatial)} but the input is "
                             f"{list(self.shape[1:])}")
        H, W = self.shape[1:]
        if kh > H + 2 * padding[0] or kw > W + 2 * padding[0]:
            raise ValueError(f"node {name!r}: the {kh}x{kw} kernel is larger than the input "
                             f"{H}x{W} with padding {padding[0]}")
        return weight, bias, stride[0], padding[0]

    @staticmethod
    def pair(name, field, value):
        arr = np.asarray(value).ravel()
        if arr.size == 1:
            arr = np.repeat(arr, 2)
        if arr.size != 2 or arr.dtype.kind not in "iuf" or np.any(arr != np.round(arr)):
            raise ValueError(f"node {name!r}: {field} = {value!r} must be one or two integers")
        return (int(arr[0]), int(arr[1]))

    @staticmethod
    def finite(name, weight, bias):
        if not (np.all(np.isfinite(weight)) and np.all(np.isfinite(bias))):
            raise ValueError(f"node {name!r} holds NaN or infinite weights")

    def readout(self, name, node):
        if isinstance(node, self.nir.Conv2d):
            raise ValueError(f"node {name!r}: the readout (the last stage before Output) must "
                             f"be Affine or Linear, not Conv2d")
        weight, bias = self.dense(name, node)
        self.layers.append(FoldedDense(weight, bias, None))
        self.sources.append([(name, _type(node), ["integrate-only readout: logits = mean "
                                                  "over T"])])
        self.shape = (weight.shape[0],)

    def spiking(self, name, node, lif_name, lif):
        if isinstance(node, self.nir.Conv2d):
            weight, bias, stride, padding = self.conv(name, node)
            H, W = self.shape[1:]
            k = weight.shape[-1]
            out = (weight.shape[0], conv_out_size(H, k, stride, padding),
                   conv_out_size(W, k, stride, padding))
        else:
            weight, bias = self.dense(name, node)
            out = (weight.shape[0],)
        negated = self.negated(lif_name, lif, weight.shape[0])
        if negated is not None:
            weight[negated] *= -1.0
            bias[negated] *= -1.0
        bias, rule, neuron, notes = self.lif(lif_name, lif, out, bias)
        if negated is not None:
            rule = self.lt(lif_name, rule, negated, out)
            notes.append(f"{int(negated.sum())} negated rows/channels restored as u < theta "
                         f"(spikefold's export)")
        if len(out) == 3:
            layer = FoldedConv2d(weight, bias, tuple(self.shape), stride, padding, rule,
                                 neuron=neuron)
            target = f"conv2d k={k} stride={stride} padding={padding}"
        else:
            layer = FoldedDense(weight, bias, rule, neuron=neuron)
            target = "dense"
        self.layers.append(layer)
        self.sources.append([(name, _type(node), [target]), (lif_name, _type(lif), notes)])
        self.shape = out

    # -- neurons --------------------------------------------------------------------------

    def negated(self, name, lif, rows):
        """The rows spikefold's export negated (LIF metadata), or ``None``."""
        meta = getattr(lif, "metadata", None) or {}
        if NEGATED not in meta or not self.ours:
            return None
        mask = np.asarray(meta[NEGATED]).astype(bool).ravel()
        if mask.shape != (rows,):
            raise ValueError(f"LIF {name!r}: metadata {NEGATED} has {mask.size} entries for "
                             f"{rows} rows")
        return mask

    @staticmethod
    def lt(name, rule, negated, shape):
        """``rule`` with the neurons of the ``negated`` rows firing on ``u < -theta``."""
        mask = negated.reshape((-1,) + (1,) * (len(shape) - 1)) & np.ones(shape, dtype=bool)
        compare = np.array(rule.compare)
        if np.any(compare[mask] != Compare.GT):
            raise ValueError(f"LIF {name!r}: a negated neuron has a threshold of +-inf")
        compare[mask] = Compare.LT
        theta = np.where(mask, -rule.theta, rule.theta)
        return ThresholdRule(theta, compare)

    def lif(self, name, lif, shape, bias):
        """``(bias, rule, neuron, conversions)`` of a LIF over neurons of ``shape``."""
        n = int(np.prod(shape))
        params = {}
        integrate = type(lif).__name__ == "IF"
        for key in ("tau", "r", "v_leak", "v_threshold", "v_reset"):
            if integrate and key in ("tau", "v_leak"):     # IF: dv/dt = r I, no leak
                params[key] = np.full(shape, self.dt) if key == "tau" else np.zeros(shape)
                continue
            value = getattr(lif, key)
            value = np.zeros(shape) if value is None else np.asarray(value, dtype=np.float64)
            if value.shape != shape and value.size == n:
                value = value.reshape(shape)          # channel-major, as Flatten
            elif value.shape != shape:
                try:                                  # (1,), (C, 1, 1), ...: one per channel
                    value = np.broadcast_to(value.reshape(value.shape[-len(shape):]
                                                          if value.ndim > len(shape) else
                                                          value.shape), shape).copy()
                except ValueError:
                    pass
            if value.shape != shape:
                raise ValueError(f"LIF {name!r}.{key} has shape {value.shape}, expected "
                                 f"{shape}")
            params[key] = value
        for key in ("tau", "r", "v_leak", "v_reset"):
            if not np.all(np.isfinite(params[key])):
                raise ValueError(f"LIF {name!r}.{key} holds NaN or infinity")
        if np.any(params["tau"] <= 0):
            raise ValueError(f"LIF {name!r}.tau must be > 0")
        if np.any(params["v_reset"] != 0):
            raise ValueError(f"LIF {name!r}.v_reset must be 0 (hard reset to zero)")
        if np.any(np.isnan(params["v_threshold"])):
            raise ValueError(f"LIF {name!r}.v_threshold holds NaN")
        if integrate:                 # Euler: v += dt r I -- a gain dt r, no decay
            d0, step = 1.0, np.full(shape, self.dt)
            notes = ["IF: decay 1 (no leak)"]
        else:
            step = self.dt / params["tau"]
            raw = 1.0 - step
            d = np.array([snap_float32(v) for v in raw.ravel()]).reshape(shape)
            if np.ptp(d) > 0:
                raise ValueError(f"LIF {name!r} has per-neuron decays {d.min()}..{d.max()}; "
                                 f"the core has one decay per layer")
            d0 = float(d.flat[0])
            if not 0.0 < d0 <= 1.0:
                raise ValueError(f"LIF {name!r}: decay 1 - dt/tau = {d0!r} is outside (0, 1] "
                                 f"(dt = {self.dt!r}); pass the dt the graph was made with")
            notes = [f"decay 1 - dt/tau = {d0!r}" + (
                "" if np.all(raw == d0) else f" (snapped from {float(raw.flat[0])!r})")]
        gain = params["r"] * step
        gain = _snap_to(gain, 1.0) if integrate else _snap_to(_snap_to(gain, 1.0), 1.0 - d0)
        if np.any(gain <= 0):
            raise ValueError(f"LIF {name!r}: input gain r*dt/tau = {float(gain.min())!r} must "
                             f"be > 0")
        lead = step * params["v_leak"] / gain
        if np.any(lead != 0):
            if len(shape) == 3:
                per = lead.reshape(shape[0], -1)
                if np.any(np.ptp(per, axis=1) > 0):
                    raise ValueError(f"LIF {name!r}.v_leak varies within a channel (a conv "
                                     f"layer's bias is per channel)")
                lead = per[:, 0]
            bias = bias + lead
            notes.append("v_leak: dt/tau * v_leak / gain added to the bias")
        thr = params["v_threshold"]
        compare = np.full(shape, Compare.GT, dtype=np.int8)
        compare[thr == np.inf] = Compare.NEVER
        compare[thr == -np.inf] = Compare.ALWAYS
        theta = np.where(np.isfinite(thr), thr, 0.0)
        if np.any(gain != 1.0):
            theta = theta / gain
            g = np.unique(gain)
            notes.append(f"input gain r*dt/tau = {float(g[0])!r}" + (
                f"..{float(g[-1])!r}" if g.size > 1 else "") + " carried as threshold / gain")
        theta = np.where(np.isfinite(thr), theta, 0.0)
        notes.append("reset to v_reset = 0")
        return bias, ThresholdRule(theta, compare), Neuron(d0, 0.5, "zero"), notes

    # -- pooling and flatten ----------------------------------------------------------------

    def pool(self, name, node):
        mode = "sum" if isinstance(node, self.nir.SumPool2d) else "avg"
        if not self.layers:
            raise ValueError(f"node {name!r}: pooling the analog network input is not "
                             f"supported (pooling takes spikes: put a Conv2d + LIF first)")
        if self.shape is None or len(self.shape) != 3:
            raise ValueError(f"node {name!r}: pooling needs a (C, H, W) input, not "
                             f"{self.shape}")
        kernel = self.pair(name, "kernel_size", node.kernel_size)
        stride = kernel if node.stride is None else self.pair(name, "stride", node.stride)
        padding = (0, 0) if node.padding is None else self.pair(name, "padding", node.padding)
        if kernel[0] != kernel[1]:
            raise ValueError(f"node {name!r}: kernel_size = {kernel} is not square")
        if stride[0] != stride[1] or stride[0] < 1:
            raise ValueError(f"node {name!r}: stride = {stride} is not supported (equal in both "
                             f"axes)")
        if padding != (0, 0):
            raise ValueError(f"node {name!r}: padding = {padding} is not supported (only 0)")
        layer = Pool2d(tuple(self.shape), kernel[0], stride[0], mode)
        layer.check(self.T, where=f"node {name!r}")
        self.layers.append(layer)
        note = [f"{mode} pooling k={kernel[0]} stride={stride[0]}"]
        if mode == "avg":
            note.append(f"1/{kernel[0] ** 2} moves into the next layer's weights (sum pooling)")
        self.sources.append([(name, _type(node), note)])
        self.shape = tuple(layer.out_shape)

    def flatten(self, name, node):
        if self.shape is None:
            stated = node.input_type.get("input") if node.input_type else None
            if stated is None:
                raise ValueError(f"node {name!r}: the input shape is not known")
            self.shape = tuple(int(v) for v in np.asarray(stated).ravel())
        nd = len(self.shape)
        start, end = int(np.asarray(node.start_dim)), int(np.asarray(node.end_dim))
        for field, value in (("start_dim", start), ("end_dim", end)):
            if not -nd <= value < nd:
                raise ValueError(f"node {name!r}: Flatten {field} = {value} is out of range for "
                                 f"the input shape {list(self.shape)} (NIR shapes carry no "
                                 f"batch axis)")
        s, e = start % nd, end % nd
        if s == e:
            return                               # nothing to flatten: an identity
        if (s, e) != (0, nd - 1):
            raise ValueError(f"node {name!r}: Flatten start_dim = {start}, end_dim = {end} of "
                             f"the input {list(self.shape)} keeps some axes; NIR shapes carry "
                             f"no batch axis and only a full flatten (start_dim = 0, "
                             f"end_dim = -1) imports")
        layer = Flatten(tuple(self.shape))
        self.layers.append(layer)
        self.sources.append([(name, _type(node), ["channel-major (C, H, W) -> C*H*W"])])
        self.shape = tuple(layer.out_shape)


def write_nir(path, network, *, dt=None, target="spikefold"):
    """Export ``network`` (:func:`to_nir`) and write it with ``nir.write`` (HDF5)."""
    _nir().write(Path(path), to_nir(network, dt=dt, target=target))


def read_nir(path, *, T=None, dt=None):
    """``nir.read`` + :func:`from_nir`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"NIR file {path} does not exist")
    return from_nir(_nir().read(path), T=T, dt=dt)
