"""Walk an snnTorch or SpikingJelly module layer by layer into a spikefold Network.

The walk visits the leaves of ``nn.Sequential`` containers (SpikingJelly's
``SeqToANNContainer``/``MultiStepContainer``/``StepModeContainer`` too) in order. Each leaf
goes to the first handler in :data:`HANDLERS` whose predicate accepts it; a handler folds
the module into the synapse being built or closes a spiking layer. A new layer kind (conv2d,
pooling, flatten) is one more :func:`register_handler`.

Conversion rules (every one exact, in real arithmetic; the rest is refused):

==========================  ==============================================================
source                      spikefold
==========================  ==============================================================
``nn.Linear``               the synapse of a ``dense`` layer (bias ``None`` -> 0)
``nn.BatchNorm1d`` after    eval mode, folded into the Linear's weight and bias:
a Linear                    ``a = gamma / sqrt(running_var + eps)``, ``W' = a W``,
                            ``b' = a (b - running_mean) + beta``
SpikingJelly tdBN (1d)      the same (its weight already holds ``alpha * v_th``)
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
``MPBNLIFNode``             after ``re_parameterize_v_threshold()``: per-neuron thresholds
                            ``(v_th - beta) sqrt(var + eps) / gamma + mu`` compared with
                            ``>=`` whatever the sign of gamma (as SpikingJelly does); the
                            unfolded node is refused (it carries ``BN(v)``: a per-neuron
                            leak), so are soft reset and ``normalize_residual``
per-neuron thresholds       ``theta_i > 0``: neuron ``i``'s weights and bias scale by
                            ``v_th / theta_i`` (``v_th = max theta``); the membrane scales,
                            the spikes do not change
``Dropout``, ``Identity``   identity (eval mode)
``Flatten``                 nothing (a dense layer flattens its input)
last ``Linear`` (+BN)       the integrate-only readout (logits = mean over T)
==========================  ==============================================================
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.fold import affine_from_bn, fold_into_weights
from golden.layers import Dense, Neuron
from golden.network import Network

from .table import ImportRefused, ImportTable

__all__ = ["HANDLERS", "register_handler", "import_module", "leaves", "Walk"]

#: ``(predicate(module) -> bool, handler(walk, name, module))`` pairs, tried in order.
HANDLERS = []


def register_handler(predicate):
    """Register ``handler(walk, name, module)`` for the modules ``predicate`` accepts."""
    def decorate(fn):
        HANDLERS.append((predicate, fn))
        return fn
    return decorate


def _type_name(module):
    if isinstance(module, str):
        return module
    cls = type(module)
    return f"{cls.__module__.split('.')[0]}.{cls.__name__}"


def _exact(library, *names):
    """Predicate: the module's own class (not a subclass) is ``library``'s ``names``."""
    def predicate(module):
        cls = type(module)
        return cls.__name__ in names and cls.__module__.split(".")[0] == library
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
    weight: np.ndarray
    bias: np.ndarray
    row: object


class Walk:
    """State of one import: the layers so far, the synapse being built, the table."""

    def __init__(self, T, input_shape):
        self.T = T
        self.input_shape = input_shape
        self.layers = []
        self.table = ImportTable()
        self.synapse = None
        self.last_neuron = None      # (name, type) of the last spiking module seen
        self.libraries = set()

    # -- the walk -------------------------------------------------------------------------

    def visit(self, name, module):
        for predicate, handler in HANDLERS:
            if predicate(module):
                handler(self, name, module)
                return
        if any(True for _ in module.children()):
            raise ImportRefused(name, _type_name(module),
                                "a custom container: the order its forward() calls its "
                                "children in is unknown; pass its layers as an nn.Sequential")
        raise ImportRefused(name, _type_name(module), "unsupported module (supported: Linear, "
                            "BatchNorm1d, tdBN 1d, snnTorch Leaky, SpikingJelly LIFNode/IFNode/"
                            "MPBNLIFNode, Flatten, Dropout, Identity, nn.Sequential)")

    @property
    def n_features(self):
        if self.synapse is not None:
            return self.synapse.weight.shape[0]
        if self.layers:
            return self.layers[-1].n_out
        if self.input_shape is not None:
            return int(np.prod(self.input_shape))
        return None

    def where(self):
        return f"layer{len(self.layers)}"

    # -- synapses -------------------------------------------------------------------------

    def add_synapse(self, name, module, weight, bias):
        if self.synapse is not None:
            raise ImportRefused(name, _type_name(module),
                                f"a second synapse after {self.synapse.name!r} without a "
                                f"neuron between them")
        n = self.n_features
        if n is not None and weight.shape[1] != n:
            raise ImportRefused(name, _type_name(module),
                                f"takes {weight.shape[1]} inputs but receives {n}")
        row = self.table.add(name, _type_name(module),
                             f"{self.where()} dense {weight.shape[1]}->{weight.shape[0]}")
        self.synapse = _Synapse(name, weight, bias, row)

    def need_synapse(self, name, module, what):
        if self.synapse is None:
            raise ImportRefused(name, _type_name(module),
                                f"{what} must follow a Linear (there is no synapse before it)")
        return self.synapse

    def fold_affine(self, name, module, a, b, conversion):
        syn = self.need_synapse(name, module, "a normalizer")
        if a.shape != (syn.weight.shape[0],):
            raise ImportRefused(name, _type_name(module),
                                f"has {a.shape[0]} features, the Linear {syn.name!r} "
                                f"{syn.weight.shape[0]}")
        syn.weight, syn.bias = fold_into_weights(syn.weight, syn.bias, a, b)
        self.table.add(name, _type_name(module), f"{self.where()} (folded)", conversion)

    # -- spiking layers -------------------------------------------------------------------

    def add_neuron(self, name, module, *, tau, theta, reset, fire, input_scale=1.0,
                   conversions=()):
        """Close the synapse with a LIF of decay ``tau``, threshold(s) ``theta``."""
        syn = self.need_synapse(name, module, "a neuron")
        kind = _type_name(module)
        conv = [c for c in conversions if c]
        n = syn.weight.shape[0]
        theta = np.asarray(theta, dtype=np.float64).reshape(-1)
        if theta.size == 1:
            theta = np.full(n, theta[0])
        if theta.shape != (n,):
            raise ImportRefused(name, kind, f"has {theta.size} thresholds for {n} neurons")
        if not np.all(np.isfinite(theta)):
            raise ImportRefused(name, kind, "a threshold is not finite")
        if not 0.0 < tau <= 1.0:
            raise ImportRefused(name, kind, f"decay {tau!r} is outside (0, 1]")
        weight, bias = syn.weight, syn.bias
        if input_scale != 1.0:
            weight = weight * input_scale
            bias = bias * input_scale
            conv.append(f"input scale {input_scale!r} folded into {syn.name!r}'s weight "
                        f"and bias")
        if fire == ">=":
            if dense_honours_fire():
                conv.append("fires on u >= v_th (neuron.fire '>=')")
            elif reset == "zero":
                theta = np.nextafter(theta, -np.inf)
                fire = ">"
                conv.append("u >= theta as u > nextafter(theta, -inf) (exact in float64 and "
                            "on the integer grid: floor(prev(theta) 2^F) = ceil(theta 2^F) - 1)")
            else:
                raise ImportRefused(name, kind, "fires on >= with subtract reset, and this "
                                    "golden.layers.dense does not honour Neuron.fire yet")
        mpbn = None
        if np.all(theta == theta[0]):
            v_th = float(theta[0])
        elif np.all(theta > 0):
            v_th = float(theta.max())
            k = v_th / theta
            weight = weight * k[:, None]
            bias = bias * k
            conv.append(f"per-neuron thresholds {theta.min():.6g}..{theta.max():.6g}: row i "
                        f"of {syn.name!r} scaled by v_th/theta_i, v_th = {v_th!r}")
        elif reset == "zero":
            # MPBN(u) = 1 * (u - theta_i) / sqrt((1 - 2**-20) + 2**-20) + 0 compared with
            # v_th = 0: every operation is exact, and it folds to the rule u > theta_i.
            v_th = 0.0
            mpbn = {"gamma": np.ones(n), "beta": np.zeros(n), "running_mean": theta.copy(),
                    "running_var": np.full(n, 1.0 - _MPBN_EPS)}
            conv.append(f"per-neuron thresholds {theta.min():.6g}..{theta.max():.6g} (some "
                        f"<= 0): carried as MPBN (u - theta_i) {fire} 0, exact; folds to "
                        f"per-neuron thresholds theta_i")
        else:
            i = int(np.argmax(theta <= 0))
            raise ImportRefused(name, kind, f"per-neuron thresholds with theta[{i}] = "
                                f"{theta[i]!r} <= 0 and {reset} reset (only positive "
                                f"per-neuron thresholds scale into the weights)")
        neuron = Neuron(tau, v_th, reset, fire) if fire != ">" else Neuron(tau, v_th, reset)
        i = len(self.layers)
        self.layers.append(Dense(weight, bias, neuron=neuron, mpbn=mpbn,
                                 mpbn_eps=_MPBN_EPS))
        syn.row.target = f"layer{i} dense {weight.shape[1]}->{weight.shape[0]}"
        self.table.add(name, kind, f"layer{i} neuron tau={tau!r} v_th={v_th!r} "
                       f"reset={reset} fire={fire}", *conv)
        self.synapse = None
        self.last_neuron = (name, kind)

    # -- the end ----------------------------------------------------------------------------

    def finish(self):
        if self.synapse is None:
            if self.last_neuron is None:
                raise ImportRefused("(model)", "-", "no Linear layer found")
            name, kind = self.last_neuron
            raise ImportRefused(name, kind, "a spiking readout: spikefold's output layer is "
                                "integrate-only (the last Linear without a neuron; logits = "
                                "mean over T of its output)")
        syn = self.synapse
        i = len(self.layers)
        self.layers.append(Dense(syn.weight, syn.bias, readout=True))
        syn.row.target = (f"layer{i} readout {syn.weight.shape[1]}->{syn.weight.shape[0]}")
        syn.row.conversions.append("integrate-only readout: logits = mean over T")
        self.synapse = None
        first = self.layers[0]
        tau = next((layer.neuron.tau for layer in self.layers if layer.neuron is not None),
                   0.25)
        v_th = next((layer.neuron.v_th for layer in self.layers if layer.neuron is not None),
                    0.5)
        self.table.library = ", ".join(sorted(self.libraries))
        meta = {"import": self.table.to_json(),
                "input_shape": list(self.input_shape or first.in_shape)}
        return Network(self.layers, T=self.T, tau=tau, v_th=v_th, meta=meta)


def import_module(module, *, T, input_shape=None, dt=None):
    """``(Network, ImportTable)`` of a trained snnTorch or SpikingJelly module.

    Parameters
    ----------
    module : torch.nn.Module
        An ``nn.Sequential`` (or a single layer) in eval mode semantics.
    T : int
        Timesteps per sample (the modules do not carry it).
    input_shape : tuple of int or None
        Per-sample input shape; default the first Linear's ``in_features``.
    dt : None
        Discrete-time modules have no dt; give it only for NIR (a value is refused).
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
    _visit_tree(walk, type(module).__name__, module, top=True)
    network = walk.finish()
    return network, walk.table


def leaves(module, name=None):
    """``(name, module)`` of the layers the walk visits, in order (``nn.Sequential`` and
    SpikingJelly's sequential containers are opened)."""
    import torch.nn as nn
    if isinstance(module, nn.Sequential) and not _refused_container(module):
        for child_name, child in module.named_children():
            yield from leaves(child, child_name if name is None else f"{name}.{child_name}")
        return
    yield (type(module).__name__ if name is None else name), module


def _visit_tree(walk, name, module, top=False):
    for leaf_name, leaf in leaves(module):
        walk.visit(leaf_name, leaf)


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
                       type(module).__module__.split(".")[0])
    walk.add_synapse(name, module, weight, bias)


def _is_bn1d(module):
    import torch.nn as nn
    return isinstance(module, nn.BatchNorm1d) and type(module).__name__ == "BatchNorm1d"


@register_handler(_exact("spikingjelly", "ThresholdDependentBatchNorm1d"))
def _sj_tdbn1d(walk, name, module):
    walk.libraries.add("spikingjelly")
    _batchnorm1d(walk, name, module, note=(
        f"SpikingJelly tdBN (alpha {module.alpha!r}, v_th {module.v_th!r}): alpha * v_th is "
        f"inside its weight, so eval mode is a BatchNorm with that weight; "))


@register_handler(_is_bn1d)
def _batchnorm1d(walk, name, module, note=""):
    if not module.track_running_stats or module.running_mean is None:
        raise ImportRefused(name, _type_name(module), "has no running statistics "
                            "(track_running_stats=False): eval mode uses batch statistics")
    n = module.num_features
    gamma = _array(module.weight) if module.affine else np.ones(n)
    beta = _array(module.bias) if module.affine else np.zeros(n)
    a, b = affine_from_bn(gamma=gamma, beta=beta, running_mean=_array(module.running_mean),
                          running_var=_array(module.running_var), eps=float(module.eps))
    walk.fold_affine(name, module, a, b, f"{note}eval-mode BatchNorm (running stats, eps "
                     f"{module.eps!r}) folded into the Linear: W' = a W, b' = a (b - mean) + "
                     f"beta, a = gamma / sqrt(var + eps)")


def _is_identity(module):
    import torch.nn as nn
    return isinstance(module, (nn.Identity, nn.Dropout)) or \
        _exact("spikingjelly", "Dropout")(module)


@register_handler(_is_identity)
def _identity(walk, name, module):
    walk.table.add(name, _type_name(module), "(none)", "identity in eval mode")


def _is_flatten(module):
    import torch.nn as nn
    return isinstance(module, nn.Flatten) and type(module).__name__ == "Flatten"


@register_handler(_is_flatten)
def _flatten(walk, name, module):
    if getattr(module, "start_dim", 1) != 1:
        raise ImportRefused(name, _type_name(module), f"start_dim = {module.start_dim}: only "
                            f"start_dim=1 (keep the batch axis) is the dense layer's flattening")
    walk.table.add(name, _type_name(module), "(none)", "a dense layer flattens its input")


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
    if getattr(module, "output", False):
        raise ImportRefused(name, kind, "output=True returns the membrane too: a spiking "
                            "readout; end the model with a Linear instead")
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
    walk.add_neuron(name, module, tau=tau, theta=theta, reset=reset, fire=">",
                    conversions=conv)


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
        if walk.T > 1:
            raise ImportRefused(name, kind, "unfolded MPBN: SpikingJelly carries the normalized "
                                "membrane BN(v) to the next step, i.e. a per-neuron leak "
                                "tau' = decay * gamma / sqrt(var + eps); spikefold has one "
                                "decay per layer (T = 1 would be exact)")
        raise ImportRefused(name, kind, "unfolded MPBN is not imported; call "
                            "re_parameterize_v_threshold() first")
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


@register_handler(lambda m: type(m).__module__.split(".")[0] == "spikingjelly")
def _sj_other(walk, name, module):
    raise ImportRefused(name, _type_name(module), "this SpikingJelly module is not supported "
                        "(neurons: LIFNode, IFNode, MPBNLIFNode; layers: Linear, BatchNorm1d, "
                        "Flatten, Dropout)")
