"""Walk an snnTorch, SpikingJelly or Norse module layer by layer into a spikefold Network.

The walk visits the leaves of ``nn.Sequential`` containers (SpikingJelly's
``SeqToANNContainer``/``MultiStepContainer``/``StepModeContainer`` and Norse's
``SequentialState`` too) in order. Each leaf goes to the first handler in :data:`HANDLERS`
whose predicate accepts it; a handler folds the module into the synapse being built, closes
a spiking layer, or adds a pooling/flatten layer. A new layer kind is one more
:func:`register_handler`.

Conversion rules (every one exact, in real arithmetic; the rest is refused):

==========================  ==============================================================
source                      spikefold
==========================  ==============================================================
``nn.Linear``               the synapse of a ``dense`` layer (bias ``None`` -> 0)
``nn.Conv2d``               the synapse of a ``conv2d`` layer: square kernel, stride 1 or
                            2, symmetric zero padding ``< k``, ``groups = dilation = 1``
                            (bias ``None`` -> 0); needs the input shape ``(C, H, W)``
``nn.BatchNorm1d/2d`` after eval mode, folded into the synapse's weight and bias per
a Linear/Conv2d             output channel: ``a = gamma / sqrt(running_var + eps)``,
                            ``W' = a W``, ``b' = a (b - running_mean) + beta``
SpikingJelly tdBN (1d/2d)   the same (its weight already holds ``alpha * v_th``)
SpikingJelly BNTT (1d/2d)   the layer's ``norm="bntt"``: step ``t``'s own BatchNorm (no
                            bias), a per-timestep per-channel affine table (not folded)
SpikingJelly TEBN (1d/2d)   ``norm="tebn"``: ``scale[t] * BN(x)``, ``p = scale``; after a
                            per-timestep norm, input scales and per-channel threshold scales
                            fold into its output scale; a BatchNorm after it is refused
``nn.MaxPool2d``            a ``pool2d`` layer, mode ``max``, of spikes (after a neuron);
``nn.AvgPool2d``            mode ``avg`` (the ``1/K`` folds into the next synapse);
                            padding 0, no ``ceil_mode``/dilation/``divisor_override``
``nn.Flatten`` (dim 1)      a ``flatten`` layer after a conv/pool layer; nothing on the
                            network input or a flat vector
snnTorch ``Leaky``          ``tau = clamp(beta, 0, 1)`` (one value per layer), ``v_th =
                            threshold``, fire ``u > v_th``; ``reset_mechanism="zero"``
                            (either ``reset_delay``) -> zero reset; ``"subtract"`` with
                            ``reset_delay=True`` -> subtract reset only when ``beta = 1``
                            (snnTorch removes ``threshold`` *after* the leak, spikefold
                            ``tau * theta``); ``"subtract"`` with ``reset_delay=False``
                            refused (snnTorch resets again when the membrane is still above
                            threshold after a reset); ``"none"`` refused
SpikingJelly ``LIFNode``    ``tau = 1 - 1/tau_SJ``; ``decay_input=True``: the ``1/tau_SJ``
                            input scale folds into the preceding weight and bias; fire
                            ``u >= v_th``; ``v_reset=None`` -> subtract reset,
                            ``v_reset = r`` -> zero reset of ``v - r`` with ``v_th - r``
``IFNode``                  ``tau = 1`` (the IF neuron), as ``LIFNode`` otherwise
``MPBNLIFNode``             after ``re_parameterize_v_threshold()``: per-neuron (dense) or
                            per-channel (conv) thresholds ``(v_th - beta) sqrt(var + eps) /
                            gamma + mu`` compared with ``>=`` whatever the sign of gamma
                            (as SpikingJelly does). Unfolded (``vbn`` a BatchNorm): exact
                            at ``T = 1`` (MPBN before a ``>=`` comparator); for ``T > 1``
                            refused: SpikingJelly carries the normalized membrane
                            ``BN(v)``, a per-channel leak ``decay * gamma / sqrt(var +
                            eps)`` that one decay per layer cannot hold. Soft reset and
                            ``normalize_residual`` refused
Norse ``LIFBoxCell``        ``k = dt * tau_mem_inv``: ``tau = 1 - k``, the input scale
                            ``k`` folds into the synapse; ``v_leak = v_reset = r``: the
                            membrane is ``v - r``, threshold ``v_th - r``; ``reset_value`` ->
                            zero, ``reset_subtract`` (``v_leak = 0``) -> subtract; fire ``>``
Norse ``LIFCell``           as ``LIFBoxCell`` when ``dt * tau_syn_inv = 1`` (the synaptic
                            current does not carry over); otherwise refused (a current-based
                            LIF: spikefold has no synaptic state)
per-neuron thresholds       ``theta_i > 0``: neuron (channel) ``i``'s weights and bias scale
                            by ``v_th / theta_i`` (``v_th = max theta``); the membrane
                            scales, the spikes do not change; otherwise (zero reset)
                            carried exactly as MPBN ``(u - theta_i) > 0``
``Dropout``, ``Identity``   identity (eval mode)
last ``Linear`` (+BN)       the integrate-only readout (logits = mean over T)
a spiking last layer        its spikes read by an identity readout ``n -> n`` (weight 1, bias
                            0): logits = spike counts / T, the class the most-spiking neuron
                            (ties to the lowest index, as ``argmax``)
==========================  ==============================================================

In a SpikingJelly network in multi-step mode, plain ``torch.nn`` BatchNorm, convolution,
pooling and flatten modules outside a ``SeqToANNContainer`` are refused: they would see
``(T, B, ...)`` as ``(N, C, ...)`` (use ``spikingjelly.activation_based.layer.*`` or wrap
them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from golden.fold import affine_from_bn, fold_into_weights
from golden.layers import Conv2d, Dense, Flatten, Neuron, Pool2d
from golden.network import Network

from .table import ImportRefused, ImportTable

__all__ = ["HANDLERS", "register_handler", "import_module", "leaves", "Walk"]

#: ``(predicate(module) -> bool, handler(walk, name, module))`` pairs, tried in order.
HANDLERS = []

#: SpikingJelly containers whose children see ``(T * B, ...)`` in multi-step mode.
_SEQ_TO_ANN = ("SeqToANNContainer",)
#: SpikingJelly containers that loop their single-step children over T.
_STEPPING = ("MultiStepContainer",)
#: Plain torch modules that misread ``(T, B, ...)`` outside such a container.
_SHAPE_SENSITIVE = ("BatchNorm1d", "BatchNorm2d", "Conv2d", "MaxPool2d", "AvgPool2d",
                    "Flatten")


def register_handler(predicate):
    """Register ``handler(walk, name, module)`` for the modules ``predicate`` accepts."""
    def decorate(fn):
        HANDLERS.append((predicate, fn))
        return fn
    return decorate


def _library(module):
    return type(module).__module__.split(".")[0]


def _type_name(module):
    if isinstance(module, str):
        return module
    cls = type(module)
    return f"{_library(module)}.{cls.__name__}"


def _exact(library, *names):
    """Predicate: the module's own class (not a subclass) is ``library``'s ``names``."""
    def predicate(module):
        cls = type(module)
        return cls.__name__ in names and _library(module) == library
    return predicate


def _torch_kind(base, *names):
    """Predicate: an instance of ``torch.nn.<base>`` whose class is named one of ``names``
    (torch's own class or SpikingJelly's ``layer.*`` step-mode wrapper of it)."""
    def predicate(module):
        import torch.nn as nn
        return (isinstance(module, getattr(nn, base)) and type(module).__name__ in names
                and _library(module) in ("torch", "spikingjelly"))
    return predicate


def _array(tensor):
    return np.asarray(tensor.detach().cpu().double().numpy(), dtype=np.float64)


def _scalar_or_array(value):
    try:
        import torch
        if isinstance(value, torch.Tensor):
            return _array(value).reshape(-1)
    except ModuleNotFoundError:     # pragma: no cover - torch is there when a module is
        pass
    return np.asarray([float(value)], dtype=np.float64)


_FIRE_PROBE = None

#: eps of the MPBN that carries per-neuron thresholds (``(1 - eps) + eps == 1`` exactly).
_MPBN_EPS = 2.0 ** -20


def dense_honours_fire():
    """Does :class:`golden.layers.Dense` evaluate :attr:`Neuron.fire` (float and folded)?"""
    global _FIRE_PROBE
    if _FIRE_PROBE is None:
        neuron = Neuron(1.0, 1.0, "zero", fire=">=")
        layer = Dense(np.ones((1, 1)), np.zeros(1), neuron=neuron).check(1)
        s = np.ones((1, 1, 1))
        try:
            float_ok = bool(layer.forward(s, neuron).spikes[0, 0, 0])
            folded_ok = bool(layer.fold(1, neuron).forward(s, neuron).spikes[0, 0, 0])
        except TypeError:
            float_ok = folded_ok = False
        _FIRE_PROBE = float_ok and folded_ok
    return _FIRE_PROBE


@dataclass
class _Synapse:
    name: str
    kind: str                   # "dense" or "conv2d"
    weight: np.ndarray
    bias: np.ndarray
    row: object
    in_shape: tuple
    stride: int = 1
    padding: int = 0
    norm: str = "none"          # a per-timestep normalizer after the synapse (BNTT, TEBN)
    norm_params: dict = field(default_factory=dict)
    norm_eps: float = 1e-5

    @property
    def channels(self):
        return self.weight.shape[0]

    @property
    def out_shape(self):
        if self.kind == "dense":
            return (self.weight.shape[0],)
        k = self.weight.shape[-1]
        return (self.weight.shape[0],) + tuple(
            (n + 2 * self.padding - k) // self.stride + 1 for n in self.in_shape[1:])

    def label(self):
        if self.kind == "dense":
            return f"dense {self.weight.shape[1]}->{self.weight.shape[0]}"
        c_out, c_in, k, _ = self.weight.shape
        return (f"conv2d {c_in}->{c_out} {k}x{k} stride {self.stride} pad {self.padding} "
                f"{_shape(self.in_shape)}->{_shape(self.out_shape)}")


def _shape(shape):
    return "x".join(str(int(s)) for s in shape)


class Walk:
    """State of one import: the layers so far, the synapse being built, the table."""

    def __init__(self, T, input_shape):
        self.T = T
        self.input_shape = input_shape
        self.shape = input_shape     # per-sample shape after the last closed layer
        self.layers = []
        self.table = ImportTable()
        self.synapse = None
        self.last_neuron = None      # (name, type) of the last spiking module seen
        self.libraries = set()
        self.multi_step = False      # a SpikingJelly network in multi-step mode
        self.wrapped = set()         # ids of modules inside a SeqToANNContainer
        self.stepped = set()         # ids of modules inside a MultiStepContainer
        self.tuple_output = None     # (name, type) of a Leaky(output=True) seen

    # -- the walk -------------------------------------------------------------------------

    def visit(self, name, module):
        if self.tuple_output is not None:
            raise ImportRefused(*self.tuple_output, f"output=True returns (spikes, membrane), "
                                f"which {name!r} after it cannot take; only the last layer "
                                f"may have output=True")
        if (self.multi_step and type(module).__name__ in _SHAPE_SENSITIVE
                and _library(module) == "torch" and id(module) not in self.wrapped):
            raise ImportRefused(name, _type_name(module), "a plain torch module in a "
                                "multi-step SpikingJelly network sees (T, B, ...) as (N, C, "
                                "...); use spikingjelly.activation_based.layer's or wrap it "
                                "in layer.SeqToANNContainer")
        if (self.multi_step and _library(module) == "spikingjelly"
                and getattr(module, "step_mode", None) == "s" and hasattr(module, "reset")
                and id(module) not in self.stepped and id(module) not in self.wrapped):
            raise ImportRefused(name, _type_name(module), "a single-step SpikingJelly module "
                                "in a multi-step network reads the (T, B, ...) sequence as one "
                                "step; set step_mode='m' (functional.set_step_mode) or wrap it "
                                "in layer.MultiStepContainer")
        for predicate, handler in HANDLERS:
            if predicate(module):
                handler(self, name, module)
                return
        if any(True for _ in module.children()):
            raise ImportRefused(name, _type_name(module),
                                "a custom container: the order its forward() calls its "
                                "children in is unknown; pass its layers as an nn.Sequential")
        raise ImportRefused(name, _type_name(module), "unsupported module (supported: Linear, "
                            "Conv2d, BatchNorm1d/2d, tdBN, BNTT, TEBN, MaxPool2d, AvgPool2d, "
                            "Flatten, snnTorch Leaky, SpikingJelly LIFNode/IFNode/MPBNLIFNode, Norse "
                            "LIFBoxCell/LIFCell, Dropout, Identity, nn.Sequential)")

    @property
    def n_features(self):
        if self.synapse is not None:
            return self.synapse.channels
        if self.shape is not None:
            return int(np.prod(self.shape))
        return None

    def where(self):
        return f"layer{len(self.layers)}"

    # -- synapses -------------------------------------------------------------------------

    def _open(self, name, module):
        if self.synapse is not None:
            raise ImportRefused(name, _type_name(module),
                                f"a second synapse after {self.synapse.name!r} without a "
                                f"neuron between them")

    def add_synapse(self, name, module, weight, bias):
        """A Linear's synapse (a ``dense`` layer)."""
        self._open(name, module)
        kind = _type_name(module)
        if self.shape is not None and len(self.shape) > 1 and self.layers:
            raise ImportRefused(name, kind, f"a Linear on a {_shape(self.shape)} map acts on "
                                f"its last axis only; put an nn.Flatten before it")
        n = self.n_features
        if n is not None and weight.shape[1] != n:
            raise ImportRefused(name, kind, f"takes {weight.shape[1]} inputs but receives {n}")
        syn = _Synapse(name, "dense", weight, bias, None, (weight.shape[1],))
        syn.row = self.table.add(name, kind, f"{self.where()} {syn.label()}")
        self.synapse = syn

    def add_conv(self, name, module, weight, bias, stride, padding):
        """A Conv2d's synapse (a ``conv2d`` layer)."""
        self._open(name, module)
        kind = _type_name(module)
        if self.shape is None:
            raise ImportRefused(name, kind, "the input shape is unknown: give input_shape="
                                "(C, H, W) (spikefold import --input-shape C,H,W)")
        if len(self.shape) != 3:
            raise ImportRefused(name, kind, f"receives a {_shape(self.shape)} vector, not a "
                                f"(C, H, W) map")
        if self.shape[0] != weight.shape[1]:
            raise ImportRefused(name, kind, f"takes {weight.shape[1]} channels but receives "
                                f"{self.shape[0]} (shape {_shape(self.shape)})")
        k = weight.shape[-1]
        if k > self.shape[1] + 2 * padding or k > self.shape[2] + 2 * padding:
            raise ImportRefused(name, kind, f"the {k}x{k} kernel is larger than the input "
                                f"{_shape(self.shape)} with padding {padding}")
        syn = _Synapse(name, "conv2d", weight, bias, None, tuple(self.shape), stride, padding)
        syn.row = self.table.add(name, kind, f"{self.where()} {syn.label()}")
        self.synapse = syn

    def need_synapse(self, name, module, what):
        if self.synapse is None:
            raise ImportRefused(name, _type_name(module),
                                f"{what} must follow a Linear or Conv2d (there is no synapse "
                                f"before it)")
        return self.synapse

    def fold_affine(self, name, module, a, b, conversion):
        syn = self.need_synapse(name, module, "a normalizer")
        if syn.norm != "none":
            raise ImportRefused(name, _type_name(module), f"a BatchNorm after the per-timestep "
                                f"{syn.norm} normalizer of {syn.name!r}: it would act on the "
                                f"normalizer's output, which spikefold's layer cannot hold")
        if a.shape != (syn.channels,):
            raise ImportRefused(name, _type_name(module),
                                f"has {a.shape[0]} features, the {syn.kind} synapse "
                                f"{syn.name!r} {syn.channels}")
        syn.weight, syn.bias = fold_into_weights(syn.weight, syn.bias, a, b)
        self.table.add(name, _type_name(module), f"{self.where()} (folded)", conversion)

    def set_norm(self, name, module, norm, params, eps, conversion):
        """A per-timestep normalizer (BNTT, TEBN) after the synapse: the layer's ``norm``
        (it folds into a per-timestep, per-channel affine table, not into the weights)."""
        syn = self.need_synapse(name, module, "a normalizer")
        kind = _type_name(module)
        if syn.norm != "none":
            raise ImportRefused(name, kind, f"a second per-timestep normalizer after "
                                f"{syn.norm} on {syn.name!r}")
        for key, value in params.items():
            if value.shape[-1:] != (syn.channels,) and key != "p":
                raise ImportRefused(name, kind, f"has {value.shape[-1]} features, the "
                                    f"{syn.kind} synapse {syn.name!r} {syn.channels}")
        syn.norm, syn.norm_params, syn.norm_eps = norm, params, float(eps)
        self.table.add(name, kind, f"{self.where()} norm {norm}", conversion)

    # -- layers without synapses ------------------------------------------------------------

    def add_pool(self, name, module, kernel, stride, mode, conversions=()):
        kind = _type_name(module)
        if self.synapse is not None:
            raise ImportRefused(name, kind, f"pools the currents of {self.synapse.name!r} "
                                f"before its neuron; spikefold pools spikes (put the pooling "
                                f"after the neuron)")
        if not self.layers:
            raise ImportRefused(name, kind, "pools the analog network input; spikefold pools "
                                "spikes (put a Conv2d and a neuron first)")
        if self.shape is None or len(self.shape) != 3:
            raise ImportRefused(name, kind, f"pools a {self.shape} vector, not a (C, H, W) map")
        if kernel > self.shape[1] or kernel > self.shape[2]:
            raise ImportRefused(name, kind, f"kernel {kernel} is larger than the input "
                                f"{_shape(self.shape)}")
        layer = Pool2d(tuple(self.shape), kernel, stride, mode)
        i = len(self.layers)
        self.layers.append(layer)
        self.table.add(name, kind, f"layer{i} pool2d {mode} {kernel}x{kernel} stride {stride} "
                       f"{_shape(self.shape)}->{_shape(layer.out_shape)}", *conversions)
        self.shape = tuple(layer.out_shape)

    def add_flatten(self, name, module):
        kind = _type_name(module)
        if self.synapse is not None:
            raise ImportRefused(name, kind, f"flattens the currents of {self.synapse.name!r} "
                                f"before its neuron; put the Flatten after the neuron")
        if self.shape is None or len(self.shape) == 1:
            self.table.add(name, kind, "(none)", "a flat vector: nothing to flatten")
            return
        if not self.layers:
            self.table.add(name, kind, "(none)", f"flattens the network input "
                           f"{_shape(self.shape)}: the first dense layer reads it flattened "
                           f"(channel-major)")
            self.shape = (int(np.prod(self.shape)),)
            return
        layer = Flatten(tuple(self.shape))
        i = len(self.layers)
        self.layers.append(layer)
        self.table.add(name, kind, f"layer{i} flatten {_shape(self.shape)}->"
                       f"{layer.out_shape[0]}", "channel-major (c, y, x), as torch.flatten")
        self.shape = tuple(layer.out_shape)

    # -- spiking layers -------------------------------------------------------------------

    def add_neuron(self, name, module, *, tau, theta, reset, fire, input_scale=1.0,
                   conversions=(), mpbn=None, mpbn_eps=None):
        """Close the synapse with a LIF of decay ``tau``, threshold(s) ``theta`` (one, or
        one per neuron of a dense layer / per channel of a conv layer); ``mpbn`` (dict of
        per-channel arrays, with ``mpbn_eps``) is an MPBN before the comparator."""
        syn = self.need_synapse(name, module, "a neuron")
        kind = _type_name(module)
        conv = [c for c in conversions if c]
        n = syn.channels
        per = "neuron" if syn.kind == "dense" else "channel"
        theta = np.asarray(theta, dtype=np.float64).reshape(-1)
        if theta.size == 1:
            theta = np.full(n, theta[0])
        if theta.shape != (n,):
            raise ImportRefused(name, kind, f"has {theta.size} thresholds for {n} {per}s"
                                + (" (spikefold's conv thresholds are per channel)"
                                   if syn.kind == "conv2d" else ""))
        if not np.all(np.isfinite(theta)):
            raise ImportRefused(name, kind, "a threshold is not finite")
        if not 0.0 < tau <= 1.0:
            raise ImportRefused(name, kind, f"decay {tau!r} is outside (0, 1]")
        weight, bias = syn.weight, syn.bias
        norm_params = {key: value.copy() for key, value in syn.norm_params.items()}
        if input_scale != 1.0:
            if syn.norm == "none":
                weight = weight * input_scale
                bias = bias * input_scale
                conv.append(f"input scale {input_scale!r} folded into {syn.name!r}'s weight "
                            f"and bias")
            else:
                _scale_norm(syn.norm, norm_params, np.full(n, input_scale))
                conv.append(f"input scale {input_scale!r} folded into the {syn.norm} "
                            f"normalizer's output scale")
        if fire == ">=":
            if dense_honours_fire():
                conv.append("fires on u >= v_th (neuron.fire '>=')")
            elif reset == "zero" and mpbn is None:
                theta = np.nextafter(theta, -np.inf)
                fire = ">"
                conv.append("u >= theta as u > nextafter(theta, -inf) (exact in float64 and "
                            "on the integer grid: floor(prev(theta) 2^F) = ceil(theta 2^F) - 1)")
            else:
                raise ImportRefused(name, kind, "fires on >=, and this golden.layers.dense "
                                    "does not honour Neuron.fire yet")
        if mpbn is not None:
            if not np.all(theta == theta[0]):
                raise ImportRefused(name, kind, "MPBN with per-neuron thresholds")
            v_th = float(theta[0])
            if reset != "zero":
                raise ImportRefused(name, kind, "MPBN with subtract reset (spikefold's MPBN "
                                    "neuron resets to zero)")
        elif np.all(theta == theta[0]):
            v_th = float(theta[0])
        elif np.all(theta > 0):
            v_th = float(theta.max())
            k = v_th / theta
            if syn.norm == "none":
                weight, bias = fold_into_weights(weight, bias, k, np.zeros(n))
                where = "(weights and bias)"
            else:
                _scale_norm(syn.norm, norm_params, k)
                where = f"(its {syn.norm} output)"
            conv.append(f"per-{per} thresholds {theta.min():.6g}..{theta.max():.6g}: {per} "
                        f"i of {syn.name!r} {where} scaled by v_th/theta_i, v_th = {v_th!r}")
        elif reset == "zero":
            # MPBN(u) = 1 * (u - theta_i) / sqrt((1 - 2**-20) + 2**-20) + 0 compared with
            # v_th = 0: every operation is exact, and it folds to the rule u > theta_i.
            v_th = 0.0
            mpbn = {"gamma": np.ones(n), "beta": np.zeros(n), "running_mean": theta.copy(),
                    "running_var": np.full(n, 1.0 - _MPBN_EPS)}
            mpbn_eps = _MPBN_EPS
            conv.append(f"per-{per} thresholds {theta.min():.6g}..{theta.max():.6g} (some "
                        f"<= 0): carried as MPBN (u - theta_i) {fire} 0, exact; folds to "
                        f"per-{per} thresholds theta_i")
        else:
            i = int(np.argmax(theta <= 0))
            raise ImportRefused(name, kind, f"per-{per} thresholds with theta[{i}] = "
                                f"{theta[i]!r} <= 0 and {reset} reset (only positive "
                                f"thresholds scale into the weights)")
        neuron = Neuron(tau, v_th, reset, fire) if fire != ">" else Neuron(tau, v_th, reset)
        i = len(self.layers)
        eps = _MPBN_EPS if mpbn_eps is None else float(mpbn_eps)
        norm = dict(norm=syn.norm, norm_params=norm_params, norm_eps=syn.norm_eps)
        if syn.kind == "dense":
            layer = Dense(weight, bias, neuron=neuron, mpbn=mpbn, mpbn_eps=eps, **norm)
        else:
            layer = Conv2d(weight, bias, syn.in_shape, syn.stride, syn.padding, neuron=neuron,
                           mpbn=mpbn, mpbn_eps=eps, **norm)
        self.layers.append(layer)
        syn.row.target = f"layer{i} {syn.label()}"
        self.table.add(name, kind, f"layer{i} neuron tau={tau!r} v_th={v_th!r} "
                       f"reset={reset} fire={fire!r}", *conv)
        self.shape = tuple(syn.out_shape)
        self.synapse = None
        self.last_neuron = (name, kind)

    # -- the end ----------------------------------------------------------------------------

    def finish(self):
        if self.synapse is None:
            if self.last_neuron is None:
                raise ImportRefused("(model)", "-", "no Linear or Conv2d layer found")
            name, kind = self.last_neuron
            if not self.layers[-1].spiking:
                last = self.table.rows[-1]
                raise ImportRefused(last.source, last.module, "the model ends with a "
                                    "pooling or flatten layer; end it with a neuron or a "
                                    "Linear")
            n = int(np.prod(self.shape))
            self.layers.append(Dense(np.eye(n), np.zeros(n), readout=True))
            self.table.add("(readout)", "-", f"layer{len(self.layers) - 1} readout "
                           f"{n}->{n} (identity)", f"spiking readout {name!r}: its spikes "
                           f"feed an identity readout (weight 1, bias 0), logits = spike "
                           f"count / T; the class is the most-spiking neuron, ties to the "
                           f"lowest index")
        else:
            syn = self.synapse
            if syn.norm != "none":
                row = next(r for r in self.table.rows if r.target.endswith(f"norm {syn.norm}"))
                raise ImportRefused(row.source, row.module, "a per-timestep normalizer on the "
                                    "readout: spikefold's readout takes no normalizer")
            if syn.kind != "dense":
                raise ImportRefused(syn.name, syn.row.module, "a convolution without a "
                                    "neuron is the last layer; spikefold's readout is a "
                                    "Linear (flatten, then nn.Linear)")
            i = len(self.layers)
            self.layers.append(Dense(syn.weight, syn.bias, readout=True))
            syn.row.target = (f"layer{i} readout {syn.weight.shape[1]}->{syn.weight.shape[0]}")
            syn.row.conversions.append("integrate-only readout: logits = mean over T")
            self.synapse = None
        first = self.layers[0]
        tau = next((layer.neuron.tau for layer in self.layers
                    if getattr(layer, "neuron", None) is not None), 0.25)
        v_th = next((layer.neuron.v_th for layer in self.layers
                     if getattr(layer, "neuron", None) is not None), 0.5)
        self.table.library = ", ".join(sorted(self.libraries))
        meta = {"import": self.table.to_json(),
                "input_shape": list(self.input_shape or first.in_shape)}
        return Network(self.layers, T=self.T, tau=tau, v_th=v_th, meta=meta)


def import_module(module, *, T, input_shape=None, dt=None):
    """``(Network, ImportTable)`` of a trained snnTorch, SpikingJelly or Norse module.

    Parameters
    ----------
    module : torch.nn.Module
        An ``nn.Sequential`` (or a single layer) in eval mode semantics.
    T : int
        Timesteps per sample (the modules do not carry it).
    input_shape : tuple of int or None
        Per-sample input shape, ``(C, H, W)`` for a convolutional network; default the
        first Linear's ``in_features``.
    dt : None
        Discrete-time modules have no dt; give it only for NIR (a value is refused). Norse
        cells carry their own ``dt``.
    """
    if not isinstance(T, (int, np.integer)) or isinstance(T, bool) or T < 1:
        raise ValueError(f"T must be a positive integer, not {T!r}")
    if dt is not None:
        raise ValueError(f"dt = {dt!r}: snnTorch and SpikingJelly modules are discrete-time "
                         f"(their decay is per step); dt applies to NIR files only")
    if input_shape is not None:
        input_shape = tuple(int(s) for s in input_shape)
        if not input_shape or any(s < 1 for s in input_shape):
            raise ValueError(f"input_shape must be positive integers, not {input_shape!r}")
    walk = Walk(int(T), input_shape)
    found = list(leaves(module))
    walk.multi_step = multi_step(module)
    walk.wrapped = _wrapped(module)
    walk.stepped = _wrapped(module, names=_STEPPING)
    for leaf_name, leaf in found:
        walk.visit(leaf_name, leaf)
    network = walk.finish()
    return network, walk.table


def leaves(module, name=None):
    """``(name, module)`` of the layers the walk visits, in order (``nn.Sequential`` and
    SpikingJelly's and Norse's sequential containers are opened)."""
    import torch.nn as nn
    if isinstance(module, nn.Sequential) and not _refused_container(module):
        for child_name, child in module.named_children():
            yield from leaves(child, child_name if name is None else f"{name}.{child_name}")
        return
    yield (type(module).__name__ if name is None else name), module


def _wrapped(module, inside=False, names=_SEQ_TO_ANN):
    """Ids of the modules inside a SpikingJelly container named one of ``names`` (default
    ``SeqToANNContainer``)."""
    out = {id(module)} if inside else set()
    inside = inside or (type(module).__name__ in names and _library(module) == "spikingjelly")
    for child in module.children():
        out |= _wrapped(child, inside, names)
    return out


def multi_step(module):
    """Does ``module`` (SpikingJelly) take the whole ``(T, B, ...)`` sequence at once?"""
    return any(_library(m) == "spikingjelly" and (getattr(m, "step_mode", "s") == "m" or
                                                   type(m).__name__ in _SEQ_TO_ANN + _STEPPING)
               for m in module.modules())


def _refused_container(module):
    return type(module).__name__ in ("TLastSeqToANNContainer", "TLastMultiStepContainer")


# -- handlers ---------------------------------------------------------------------------------

def _is_linear(module):
    import torch.nn as nn
    return isinstance(module, nn.Linear) and type(module).__name__ in ("Linear", "LazyLinear")


@register_handler(_is_linear)
def _linear(walk, name, module):
    weight = _array(module.weight)
    bias = np.zeros(weight.shape[0]) if module.bias is None else _array(module.bias)
    walk.libraries.add("torch" if type(module).__module__.startswith("torch") else
                       _library(module))
    walk.add_synapse(name, module, weight, bias)


def _pair(name, module, attr, value):
    """An int from ``value`` (an int or an equal pair), or a refusal."""
    if isinstance(value, str):
        raise ImportRefused(name, _type_name(module), f"{attr}={value!r}: give the padding as "
                            f"an integer")
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ImportRefused(name, _type_name(module), f"{attr} {tuple(value)}: spikefold "
                                f"needs the same {attr} on both axes")
        value = value[0]
    return int(value)


@register_handler(_torch_kind("Conv2d", "Conv2d"))
def _conv2d(walk, name, module):
    kind = _type_name(module)
    walk.libraries.add("torch" if _library(module) == "torch" else _library(module))
    if module.groups != 1:
        raise ImportRefused(name, kind, f"groups={module.groups}: only dense convolutions "
                            f"(groups=1)")
    if _pair(name, module, "dilation", module.dilation) != 1:
        raise ImportRefused(name, kind, f"dilation {module.dilation}: only dilation 1")
    if module.padding_mode != "zeros":
        raise ImportRefused(name, kind, f"padding_mode={module.padding_mode!r}: only zero "
                            f"padding")
    k = _pair(name, module, "kernel_size", module.kernel_size)
    stride = _pair(name, module, "stride", module.stride)
    padding = _pair(name, module, "padding", module.padding)
    if stride not in (1, 2):
        raise ImportRefused(name, kind, f"stride {stride}: spikefold convolutions have stride "
                            f"1 or 2")
    if padding >= k:
        raise ImportRefused(name, kind, f"padding {padding} >= kernel {k}")
    weight = _array(module.weight)
    bias = np.zeros(weight.shape[0]) if module.bias is None else _array(module.bias)
    walk.add_conv(name, module, weight, bias, stride, padding)


def _is_bn(module):
    import torch.nn as nn
    return ((isinstance(module, nn.BatchNorm1d) and type(module).__name__ == "BatchNorm1d")
            or (isinstance(module, nn.BatchNorm2d) and type(module).__name__ == "BatchNorm2d"))


@register_handler(_exact("spikingjelly", "ThresholdDependentBatchNorm1d",
                         "ThresholdDependentBatchNorm2d"))
def _sj_tdbn(walk, name, module):
    walk.libraries.add("spikingjelly")
    _batchnorm(walk, name, module, note=(
        f"SpikingJelly tdBN (alpha {module.alpha!r}, v_th {module.v_th!r}): alpha * v_th is "
        f"inside its weight, so eval mode is a BatchNorm with that weight; "))


def _scale_norm(norm, params, k):
    """Scale the output of the per-timestep normalizer ``norm`` by ``k`` per channel, in
    place (exact: both are affine in their output)."""
    if norm == "bntt":
        params["gamma"] = params["gamma"] * k
    elif norm == "tebn":
        params["gamma"] = params["gamma"] * k
        params["beta"] = params["beta"] * k
    else:                                                   # pragma: no cover - not imported
        raise AssertionError(norm)


def _bn_state(name, module):
    """``(gamma, beta, running_mean, running_var)`` of an eval-mode BatchNorm."""
    if not module.track_running_stats or module.running_mean is None:
        raise ImportRefused(name, _type_name(module), "has no running statistics "
                            "(track_running_stats=False): eval mode uses batch statistics")
    n = module.num_features
    gamma = _array(module.weight) if module.affine else np.ones(n)
    beta = (_array(module.bias) if module.affine and module.bias is not None
            else np.zeros(n))
    return gamma, beta, _array(module.running_mean), _array(module.running_var)


def _check_bn_kind(walk, name, module):
    syn = walk.need_synapse(name, module, "a normalizer")
    two_d = "2d" in type(module).__name__
    if two_d != (syn.kind == "conv2d"):
        raise ImportRefused(name, _type_name(module), f"a {'2-D' if two_d else '1-D'} "
                            f"normalizer after the {syn.kind} synapse {syn.name!r}")
    return syn


@register_handler(_exact("spikingjelly", "BatchNormThroughTime1d", "BatchNormThroughTime2d"))
def _sj_bntt(walk, name, module):
    """SpikingJelly BNTT: ``T`` BatchNorms without bias, one per step -> ``norm="bntt"``."""
    walk.libraries.add("spikingjelly")
    kind = _type_name(module)
    _check_bn_kind(walk, name, module)
    bns = list(module.bn_list)
    if len(bns) != walk.T:
        raise ImportRefused(name, kind, f"has {len(bns)} per-step BatchNorms for T = "
                            f"{walk.T} (import with -T {len(bns)})")
    eps = {float(bn.eps) for bn in bns}
    if len(eps) != 1:
        raise ImportRefused(name, kind, f"its per-step BatchNorms have different eps {sorted(eps)}")
    states = [_bn_state(f"{name}.bn_list.{t}", bn) for t, bn in enumerate(bns)]
    params = {"gamma": np.stack([st[0] for st in states]),
              "running_mean": np.stack([st[2] for st in states]),
              "running_var": np.stack([st[3] for st in states])}
    walk.set_norm(name, module, "bntt", params, eps.pop(),
                  f"BNTT: step t uses its own BatchNorm (running stats, no bias, eps "
                  f"{bns[0].eps!r}): gamma[t] (x - mean[t]) / sqrt(var[t] + eps), a "
                  f"per-timestep per-channel affine table")


@register_handler(_exact("spikingjelly", "TemporalEffectiveBatchNorm1d",
                         "TemporalEffectiveBatchNorm2d"))
def _sj_tebn(walk, name, module):
    """SpikingJelly TEBN: ``scale[t] * BN(x_t)`` -> ``norm="tebn"`` with ``p = scale``."""
    walk.libraries.add("spikingjelly")
    kind = _type_name(module)
    _check_bn_kind(walk, name, module)
    scale = _array(module.scale).reshape(-1)
    if scale.size != walk.T:
        raise ImportRefused(name, kind, f"has {scale.size} per-step scales for T = {walk.T} "
                            f"(import with -T {scale.size})")
    gamma, beta, mean, var = _bn_state(name, module)
    walk.set_norm(name, module, "tebn", {"gamma": gamma, "beta": beta, "running_mean": mean,
                                         "running_var": var, "p": scale}, float(module.eps),
                  f"TEBN: scale[t] * BatchNorm (running stats, eps {module.eps!r}), a "
                  f"per-timestep per-channel affine table")


@register_handler(_is_bn)
def _batchnorm(walk, name, module, note=""):
    kind = _type_name(module)
    if not module.track_running_stats or module.running_mean is None:
        raise ImportRefused(name, kind, "has no running statistics "
                            "(track_running_stats=False): eval mode uses batch statistics")
    syn = walk.need_synapse(name, module, "a normalizer")
    two_d = "2d" in type(module).__name__
    if two_d != (syn.kind == "conv2d"):
        raise ImportRefused(name, kind, f"a {'2-D' if two_d else '1-D'} BatchNorm after the "
                            f"{syn.kind} synapse {syn.name!r}")
    n = module.num_features
    gamma = _array(module.weight) if module.affine else np.ones(n)
    beta = _array(module.bias) if module.affine else np.zeros(n)
    a, b = affine_from_bn(gamma=gamma, beta=beta, running_mean=_array(module.running_mean),
                          running_var=_array(module.running_var), eps=float(module.eps))
    what = " per output channel" if two_d else ""
    walk.fold_affine(name, module, a, b, f"{note}eval-mode BatchNorm (running stats, eps "
                     f"{module.eps!r}) folded into {syn.name!r}{what}: W' = a W, b' = a (b - "
                     f"mean) + beta, a = gamma / sqrt(var + eps)")


def _pool_geometry(name, module):
    kind = _type_name(module)
    k = _pair(name, module, "kernel_size", module.kernel_size)
    stride = k if module.stride is None else _pair(name, module, "stride", module.stride)
    if _pair(name, module, "padding", module.padding) != 0:
        raise ImportRefused(name, kind, f"padding {module.padding}: spikefold pools without "
                            f"padding")
    if module.ceil_mode:
        raise ImportRefused(name, kind, "ceil_mode=True: spikefold drops the partial windows "
                            "(ceil_mode=False)")
    return k, stride


@register_handler(_torch_kind("MaxPool2d", "MaxPool2d"))
def _maxpool(walk, name, module):
    kind = _type_name(module)
    if _pair(name, module, "dilation", module.dilation) != 1:
        raise ImportRefused(name, kind, f"dilation {module.dilation}: only dilation 1")
    if module.return_indices:
        raise ImportRefused(name, kind, "return_indices=True")
    k, stride = _pool_geometry(name, module)
    walk.add_pool(name, module, k, stride, "max", ["max of 0/1 spikes: the OR of the window"])


@register_handler(_torch_kind("AvgPool2d", "AvgPool2d"))
def _avgpool(walk, name, module):
    kind = _type_name(module)
    k, stride = _pool_geometry(name, module)
    if module.divisor_override not in (None, k * k):
        raise ImportRefused(name, kind, f"divisor_override={module.divisor_override}: only "
                            f"the window size {k * k}")
    walk.add_pool(name, module, k, stride, "avg", [f"mean of the {k * k} window spikes; "
                  f"folds to a sum pooling with 1/{k * k} in the next synapse's weights"])


def _is_identity(module):
    import torch.nn as nn
    return isinstance(module, (nn.Identity, nn.Dropout)) or \
        _exact("spikingjelly", "Dropout")(module)


@register_handler(_is_identity)
def _identity(walk, name, module):
    walk.table.add(name, _type_name(module), "(none)", "identity in eval mode")


@register_handler(_torch_kind("Flatten", "Flatten"))
def _flatten(walk, name, module):
    if getattr(module, "start_dim", 1) != 1 or getattr(module, "end_dim", -1) != -1:
        raise ImportRefused(name, _type_name(module), f"start_dim = {module.start_dim}, "
                            f"end_dim = {module.end_dim}: only start_dim=1, end_dim=-1 (keep "
                            f"the batch axis, flatten the rest)")
    walk.add_flatten(name, module)


# snnTorch ----------------------------------------------------------------------------------

@register_handler(_exact("snntorch", "Leaky"))
def _snntorch_leaky(walk, name, module):
    walk.libraries.add("snntorch")
    kind = _type_name(module)
    for attr, ok, why in (("inhibition", False, "lateral inhibition (only the strongest "
                                                "neuron fires) has no spikefold equivalent"),
                          ("state_quant", False, "state quantization is not supported; import "
                                                 "the float model and let spikefold quantize")):
        if bool(getattr(module, attr, False)) != ok:
            raise ImportRefused(name, kind, why)
    g = _scalar_or_array(module.graded_spikes_factor)
    if np.any(g != 1.0):
        raise ImportRefused(name, kind, f"graded_spikes_factor {g.tolist()} != 1: spikefold "
                            f"spikes are 0/1")
    output = bool(getattr(module, "output", False))
    beta_raw = _scalar_or_array(module.beta)
    beta = np.clip(beta_raw, 0.0, 1.0)
    if np.any(beta != beta[0]):
        raise ImportRefused(name, kind, f"per-neuron decays (beta {beta.min()}..{beta.max()}): "
                            f"spikefold has one decay per layer")
    tau = float(beta[0])
    if tau <= 0.0:
        raise ImportRefused(name, kind, f"beta = {float(beta_raw[0])!r} clamps to 0 (no "
                            f"memory); spikefold's decay is in (0, 1]")
    theta = _scalar_or_array(module.threshold)
    if np.any(theta < 0):
        raise ImportRefused(name, kind, "a negative threshold: snnTorch then resets neurons "
                            "that did not fire")
    mechanism = module.reset_mechanism
    delay = bool(module.reset_delay)
    conv = [f"tau = clamp(beta, 0, 1) = {tau!r}" + (" (clamped)" if beta_raw[0] != tau
                                                     else ""),
            f"reset_mechanism={mechanism!r}, reset_delay={delay}"]
    if mechanism == "zero":
        reset = "zero"
    elif mechanism == "subtract":
        if not delay:
            raise ImportRefused(name, kind, "reset_mechanism='subtract' with reset_delay=False: "
                                "snnTorch subtracts the threshold again at the next step when "
                                "the membrane is still above it after a reset (firing then "
                                "needs 2 thresholds); use reset_delay=True or 'zero'")
        if tau != 1.0:
            raise ImportRefused(name, kind, f"reset_mechanism='subtract' with reset_delay=True "
                                f"and beta = {tau!r}: snnTorch subtracts the threshold after "
                                f"the leak (u = beta u + I - theta s[t-1]), spikefold before it "
                                f"(beta theta); exact only for beta = 1; use "
                                f"reset_mechanism='zero'")
        reset = "subtract"
    else:
        raise ImportRefused(name, kind, f"reset_mechanism={mechanism!r}: spikefold resets to "
                            f"zero or by subtraction")
    if output:
        conv.append("output=True: (spikes, membrane); the spikes are the output (a spiking "
                    "readout only: nothing may follow it)")
    walk.add_neuron(name, module, tau=tau, theta=theta, reset=reset, fire=">",
                    conversions=conv)
    if output:
        walk.tuple_output = (name, kind)


@register_handler(lambda m: type(m).__module__.split(".")[0] == "snntorch")
def _snntorch_other(walk, name, module):
    raise ImportRefused(name, _type_name(module), "this snnTorch module is not supported "
                        "(neurons: Leaky only)")


# SpikingJelly --------------------------------------------------------------------------------

def _sj_reset(name, module, theta):
    """``(reset, theta, conversion)`` for SpikingJelly's ``v_reset``."""
    v_reset = module.v_reset
    if v_reset is None:
        return "subtract", theta, "v_reset=None: subtract reset"
    v_reset = float(v_reset)
    if v_reset == 0.0:
        return "zero", theta, "v_reset=0: zero reset"
    return "zero", theta - v_reset, (f"v_reset={v_reset!r}: the membrane is v - v_reset "
                                     f"(starts at 0, resets to 0), threshold v_th - v_reset")


def _sj_common(name, module):
    kind = _type_name(module)
    if getattr(module, "step_mode", "s") not in ("s", "m"):
        raise ImportRefused(name, kind, f"step_mode {module.step_mode!r}")
    return kind


def _sj_lif_decay(name, module):
    tau_sj = float(module.tau)
    if not tau_sj > 1.0:
        raise ImportRefused(name, _type_name(module), f"tau = {tau_sj!r}: the decay 1 - 1/tau "
                            f"must be in (0, 1)")
    decay = 1.0 - 1.0 / tau_sj
    scale = 1.0 / tau_sj if module.decay_input else 1.0
    conv = [f"decay 1 - 1/tau = 1 - 1/{tau_sj!r} = {decay!r}",
            "decay_input=True: input scaled by 1/tau" if module.decay_input
            else "decay_input=False"]
    return decay, scale, conv


@register_handler(_exact("spikingjelly", "LIFNode"))
def _sj_lif(walk, name, module):
    walk.libraries.add("spikingjelly")
    _sj_common(name, module)
    decay, scale, conv = _sj_lif_decay(name, module)
    theta = _scalar_or_array(module.v_threshold)
    reset, theta, rconv = _sj_reset(name, module, theta)
    walk.add_neuron(name, module, tau=decay, theta=theta, reset=reset, fire=">=",
                    input_scale=scale, conversions=conv + [rconv])


@register_handler(_exact("spikingjelly", "IFNode"))
def _sj_if(walk, name, module):
    walk.libraries.add("spikingjelly")
    _sj_common(name, module)
    theta = _scalar_or_array(module.v_threshold)
    reset, theta, rconv = _sj_reset(name, module, theta)
    walk.add_neuron(name, module, tau=1.0, theta=theta, reset=reset, fire=">=",
                    conversions=["IF neuron: tau = 1 (no leak)", rconv])


@register_handler(_exact("spikingjelly", "MPBNLIFNode"))
def _sj_mpbn_lif(walk, name, module):
    import torch.nn as nn
    walk.libraries.add("spikingjelly")
    kind = _sj_common(name, module)
    if getattr(module, "normalize_residual", False):
        raise ImportRefused(name, kind, "normalize_residual=True re-normalizes the membrane "
                            "of neurons that did not fire (a per-neuron affine on the carried "
                            "membrane)")
    decay, scale, conv = _sj_lif_decay(name, module)
    if not isinstance(module.vbn, nn.Identity):
        _sj_unfolded_mpbn(walk, name, module, decay, scale, conv)
        return
    if getattr(module, "learnable_vth", False):
        theta = np.exp(_array(module.a))
        conv.append("learnable threshold exp(a)")
    elif getattr(module, "fold_bn", False):
        gamma = _array(module.gamma)
        beta = _array(module.beta)
        mu = _array(module.mu)
        sigma = np.sqrt(_array(module.sigma2) + float(module.eps))
        v_th = float(module.v_threshold)
        theta = (v_th - beta) * sigma / gamma + mu
        conv.append("folded MPBN: theta_i = (v_th - beta) sqrt(var + eps) / gamma + mu, "
                    "compared with >= for every sign of gamma (as SpikingJelly does)")
        if module.v_reset is None:
            raise ImportRefused(name, kind, "folded MPBN with soft reset: SpikingJelly fires at "
                                "the per-neuron theta_i but subtracts the scalar v_threshold")
    else:
        theta = _scalar_or_array(module.v_threshold)
    reset, theta, rconv = _sj_reset(name, module, theta)
    walk.add_neuron(name, module, tau=decay, theta=theta, reset=reset, fire=">=",
                    input_scale=scale, conversions=conv + [rconv])


def _sj_unfolded_mpbn(walk, name, module, decay, scale, conv):
    """``MPBNLIFNode`` before ``re_parameterize_v_threshold()``: ``v = BN(charge(v, x))``,
    fire ``v >= v_th``, then reset; the next step charges from the normalized ``v``."""
    kind = _type_name(module)
    if walk.T > 1:
        raise ImportRefused(name, kind, "unfolded MPBN with T > 1: SpikingJelly carries the "
                            "normalized membrane BN(v) to the next step, i.e. a per-channel "
                            "leak decay * gamma / sqrt(var + eps) that spikefold's one decay "
                            "per layer cannot hold; call re_parameterize_v_threshold() (its "
                            "folded neuron carries the raw membrane) or import with T = 1")
    bn = module.vbn
    if not bn.track_running_stats or bn.running_mean is None:
        raise ImportRefused(name, kind, "its membrane BatchNorm has no running statistics")
    if module.v_reset is not None and float(module.v_reset) != 0.0:
        raise ImportRefused(name, kind, f"unfolded MPBN with v_reset={float(module.v_reset)!r}"
                            f": the membrane starts at v_reset inside the BatchNorm")
    n = bn.num_features
    mpbn = {"gamma": _array(bn.weight) if bn.affine else np.ones(n),
            "beta": _array(bn.bias) if bn.affine else np.zeros(n),
            "running_mean": _array(bn.running_mean), "running_var": _array(bn.running_var)}
    if getattr(module, "learnable_vth", False):
        theta = np.exp(_array(module.a))
        mpbn["beta"] = mpbn["beta"] - theta
        v_th = 0.0
        conv.append("learnable threshold exp(a): BN(u) >= exp(a_i) as BN(u) - exp(a_i) >= 0 "
                    "(beta_i - exp(a_i))")
    else:
        v_th = float(module.v_threshold)
    conv.append(f"unfolded MPBN at T = 1: BatchNorm (eps {bn.eps!r}) of the membrane before "
                f"a >= comparator, exact (the normalized carry and the reset never act)")
    walk.add_neuron(name, module, tau=decay, theta=v_th, reset="zero", fire=">=",
                    input_scale=scale, conversions=conv, mpbn=mpbn, mpbn_eps=float(bn.eps))


@register_handler(lambda m: type(m).__module__.split(".")[0] == "spikingjelly")
def _sj_other(walk, name, module):
    raise ImportRefused(name, _type_name(module), "this SpikingJelly module is not supported "
                        "(neurons: LIFNode, IFNode, MPBNLIFNode; layers: Linear, Conv2d, "
                        "BatchNorm1d/2d, tdBN, BNTT, TEBN, MaxPool2d, AvgPool2d, Flatten, "
                        "Dropout, SeqToANNContainer, MultiStepContainer)")


# Norse ---------------------------------------------------------------------------------------

def _norse_scalar(name, module, p, attr):
    value = _scalar_or_array(getattr(p, attr))
    if np.any(value != value[0]):
        raise ImportRefused(name, _type_name(module), f"per-neuron {attr} "
                            f"({value.min()}..{value.max()}): spikefold has one per layer")
    return float(value[0])


def _norse_lif(walk, name, module, conv):
    """A Norse LIF without synaptic current: ``v += dt tau_mem_inv (v_leak - v + x)``, fire
    ``v > v_th``, reset to ``v_reset`` (or subtract ``v_th``)."""
    from norse.torch.functional.reset import reset_subtract, reset_value
    kind = _type_name(module)
    p, dt = module.p, float(module.dt)
    k = dt * _norse_scalar(name, module, p, "tau_mem_inv")
    decay = 1.0 - k
    if not 0.0 < decay <= 1.0:
        raise ImportRefused(name, kind, f"dt * tau_mem_inv = {k!r}: the decay 1 - dt * "
                            f"tau_mem_inv must be in (0, 1]")
    v_leak = _norse_scalar(name, module, p, "v_leak")
    v_th = _norse_scalar(name, module, p, "v_th")
    v_reset = _norse_scalar(name, module, p, "v_reset")
    method = getattr(p, "reset_method", reset_value)
    conv += [f"decay 1 - dt * tau_mem_inv = 1 - {k!r} = {decay!r}",
             f"input scaled by dt * tau_mem_inv = {k!r}"]
    if method is reset_subtract:
        if v_leak != 0.0:
            raise ImportRefused(name, kind, f"reset_subtract with v_leak = {v_leak!r}: the "
                                f"subtracted v_th is not the shifted threshold v_th - v_leak")
        reset, theta = "subtract", v_th
        conv.append("reset_subtract: subtract reset")
    elif method is reset_value:
        if v_leak != v_reset:
            raise ImportRefused(name, kind, f"v_leak = {v_leak!r} != v_reset = {v_reset!r}: "
                                f"the membrane would start ({v_leak!r}) and reset "
                                f"({v_reset!r}) at different values")
        reset, theta = "zero", v_th - v_leak
        conv.append("reset to v_reset: zero reset" if v_leak == 0.0 else
                    f"v_leak = v_reset = {v_leak!r}: the membrane is v - v_leak (starts and "
                    f"resets at 0), threshold v_th - v_leak")
    else:
        raise ImportRefused(name, kind, f"reset_method {getattr(method, '__name__', method)}: "
                            f"only reset_value and reset_subtract")
    walk.add_neuron(name, module, tau=decay, theta=theta, reset=reset, fire=">",
                    input_scale=k, conversions=conv)


@register_handler(_exact("norse", "LIFBoxCell"))
def _norse_lif_box_cell(walk, name, module):
    walk.libraries.add("norse")
    _norse_lif(walk, name, module, [])


@register_handler(_exact("norse", "LIFCell"))
def _norse_lif_cell(walk, name, module):
    walk.libraries.add("norse")
    k_syn = float(module.dt) * _norse_scalar(name, module, module.p, "tau_syn_inv")
    if k_syn != 1.0:
        raise ImportRefused(name, _type_name(module), f"a current-based LIF: its synaptic "
                            f"current decays by 1 - dt * tau_syn_inv = {1.0 - k_syn!r} per "
                            f"step and carries over; spikefold has no synaptic state (use "
                            f"LIFBoxCell, or dt * tau_syn_inv = 1)")
    _norse_lif(walk, name, module, ["dt * tau_syn_inv = 1: the synaptic current does not "
                                    "carry over (a LIFBoxCell)"])


@register_handler(_exact("norse", "LICell", "LIBoxCell", "LI", "LIBox"))
def _norse_li(walk, name, module):
    raise ImportRefused(name, _type_name(module), "a leaky-integrator readout: its output is "
                        "a membrane that leaks (a time-weighted sum of the currents), not "
                        "spikefold's readout, the mean over T of the currents; end the model "
                        "with a Linear and read its mean over T")


@register_handler(lambda m: type(m).__module__.split(".")[0] == "norse")
def _norse_other(walk, name, module):
    raise ImportRefused(name, _type_name(module), "this Norse module is not supported "
                        "(neurons: LIFBoxCell, LIFCell with dt * tau_syn_inv = 1; cells only, "
                        "in a SequentialState)")
