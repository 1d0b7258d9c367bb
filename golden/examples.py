"""Built-in examples: a folded MPBN layer with every kind of neuron, and its stimulus.

Used by ``spikefold demo``/``verilog``/``cosim``/``build`` when no model file is given.
"""

from __future__ import annotations

import numpy as np

from .core import CoreConfig
from .corefile import FoldedCore
from .fixed import Fixed, fixed_format
from .fold import AffineRule, fold_mpbn
from .quantize import quantize_affine, quantize_rule

__all__ = ["example_mpbn_params", "example_core", "example_currents", "example_network",
           "example_conv_network", "add_core_arguments", "core_from_args"]


def example_mpbn_params(neurons, seed=0):
    """Random trained-looking element-wise MPBN parameters with gamma > 0, < 0 and = 0."""
    rng = np.random.default_rng(seed)
    gamma = rng.normal(1.0, 0.5, neurons)
    gamma[rng.random(neurons) < 0.2] *= -1.0          # negative gamma: comparison flips
    gamma[rng.random(neurons) < 0.05] = 0.0           # always/never neurons
    return dict(
        gamma=gamma,
        beta=rng.normal(0.0, 0.5, neurons),
        running_mean=rng.normal(0.3, 0.5, neurons),
        running_var=rng.uniform(0.05, 2.0, neurons),
        eps=1e-5,
    )


def example_core(neurons=64, *, T=8, membrane=Fixed(16, 8), current=None, threshold=None,
                 tau=0.25, tau_bits=8, reset="zero", affine=False, channels=None,
                 scale=Fixed(16, 12), v_th=0.5, seed=0):
    """A folded MPBN core of ``neurons`` neurons (channel-free element-wise MPBN).

    With ``affine`` a BNTT-like per-timestep table is included.
    """
    current = membrane if current is None else current
    channels = (4 if neurons % 4 == 0 else 1) if channels is None else channels
    config = CoreConfig(neurons=neurons, T=T, current=current, membrane=membrane,
                        threshold=threshold, tau=tau, tau_bits=tau_bits, reset=reset,
                        affine=affine, channels=channels, scale=scale)
    rule = fold_mpbn(v_th=v_th, **example_mpbn_params(neurons, seed))
    thresholds = quantize_rule(rule, config.membrane, config.threshold)
    table = None
    if affine:
        rng = np.random.default_rng(seed + 1)
        limit = min(2.0, scale.max_value)
        a = np.clip(rng.normal(1.0, 0.4, (T, channels)), -limit, limit)
        b = np.clip(rng.normal(0.0, 0.25, (T, channels)), membrane.min_value, membrane.max_value)
        table = quantize_affine(AffineRule(a, b), config.scale, config.membrane)
    return FoldedCore(config, thresholds, table)


def example_network(sizes, *, norm="tdbn", mpbn=True, T=4, tau=0.25, seed=0,
                    weight_scale=2.0):
    """A random trained-looking :class:`golden.network.Network` (float) of layer ``sizes``.

    Every hidden layer has normalizer ``norm`` after its synapses and, with ``mpbn``, MPBN
    with gamma of every sign: the first fifth of the neurons flip their comparison, and
    (from 5 neurons on) the last two have gamma = 0, one never and one always firing.
    The last layer is the integrate-only readout.
    """
    from .network import NORM_EPS, NORM_PARAMS, Layer, Network, shape_of
    rng = np.random.default_rng(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.normal(0, weight_scale / np.sqrt(n_in), (n_out, n_in))
        b = rng.normal(0, 0.2, n_out)
        if i == len(sizes) - 2:
            layers.append(Layer(w, b, readout=True))
            continue
        params = {}
        for name, code in NORM_PARAMS[norm].items():
            shape = shape_of(code, T, n_out)
            if name == "running_var":
                params[name] = rng.uniform(0.2, 2.0, shape)
            elif name in ("gamma", "p", "g"):
                params[name] = rng.uniform(0.5, 1.5, shape)
            else:
                params[name] = rng.normal(0.0, 0.3, shape)
        m = None
        if mpbn:
            gamma = rng.normal(1.0, 0.5, n_out)
            gamma[:max(1, n_out // 5)] = -np.abs(gamma[:max(1, n_out // 5)])
            beta = rng.normal(0.0, 0.3, n_out)
            if n_out >= 5:
                gamma[-2:] = 0.0
                beta[-2] = -1.0                    # never fires
                beta[-1] = 1.0                     # always fires (beta > v_th)
            m = {"gamma": gamma, "beta": beta, "running_mean": rng.normal(0.2, 0.3, n_out),
                 "running_var": rng.uniform(0.1, 1.0, n_out)}
        layers.append(Layer(w, b, norm=norm, norm_params=params, norm_eps=NORM_EPS[norm],
                            mpbn=m))
    return Network(layers, T=T, tau=tau)


def example_conv_network(in_shape=(1, 8, 8), layers=None, *, classes=10, norm="tdbn",
                         mpbn="channel", T=4, tau=0.25, seed=0, weight_scale=2.0):
    """A random trained-looking convolutional :class:`golden.network.Network` (float).

    ``layers`` lists the hidden layers as model-file-like dicts, default::

        [{"kind": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1},
         {"kind": "pool2d", "kernel": 2, "mode": "max"},
         {"kind": "conv2d", "out_channels": 8, "kernel": 3, "stride": 2, "padding": 1},
         {"kind": "flatten"}]

    (``conv2d``: ``out_channels``, ``kernel``, ``stride`` 1, ``padding`` 0 by default;
    ``pool2d``: ``kernel``, ``stride``, ``mode``); a dense readout of ``classes`` follows.
    Every conv layer has normalizer ``norm`` and, with ``mpbn`` ``"channel"`` (state
    ``(C,)``) or ``"element"`` (``(C, H, W)``), MPBN with gamma of every sign: the first
    fifth of the entries (at least one) flip their comparison and the last two have
    gamma = 0, one never and one always firing. ``mpbn=None``: no MPBN.
    """
    from .layers import Conv2d, Dense, Flatten, Pool2d
    from .network import Network
    from .normalizers import NORM_EPS, NORM_PARAMS, param_shape
    if mpbn not in (None, "channel", "element"):
        raise ValueError(f"mpbn must be None, 'channel' or 'element', not {mpbn!r}")
    if layers is None:
        layers = [{"kind": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1},
                  {"kind": "pool2d", "kernel": 2, "mode": "max"},
                  {"kind": "conv2d", "out_channels": 8, "kernel": 3, "stride": 2,
                   "padding": 1},
                  {"kind": "flatten"}]
    rng = np.random.default_rng(seed)

    def norm_params(C):
        params = {}
        for name, code in NORM_PARAMS[norm].items():
            shape = param_shape(code, T, C)
            if name == "running_var":
                params[name] = rng.uniform(0.2, 2.0, shape)
            elif name in ("gamma", "p", "g"):
                params[name] = rng.uniform(0.5, 1.5, shape)
            else:
                params[name] = rng.normal(0.0, 0.3, shape)
        return params

    def mpbn_params(shape):
        n = int(np.prod(shape))
        gamma = rng.normal(1.0, 0.5, n)
        gamma[:max(1, n // 5)] = -np.abs(gamma[:max(1, n // 5)])
        beta = rng.normal(0.0, 0.3, n)
        if n >= 3:
            gamma[-2:] = 0.0
            beta[-2] = -1.0                        # never fires
            beta[-1] = 1.0                         # always fires (beta > v_th)
        return {"gamma": gamma.reshape(shape), "beta": beta.reshape(shape),
                "running_mean": rng.normal(0.2, 0.3, shape),
                "running_var": rng.uniform(0.1, 1.0, shape)}

    net, shape = [], tuple(in_shape)
    for i, spec in enumerate(layers):
        spec = dict(spec)
        kind = spec.pop("kind", None)
        if kind == "conv2d":
            c_out, k = spec.pop("out_channels"), spec.pop("kernel")
            w = rng.normal(0, weight_scale / np.sqrt(shape[0] * k * k), (c_out, shape[0], k, k))
            layer = Conv2d(w, rng.normal(0, 0.2, c_out), shape, stride=spec.pop("stride", 1),
                           padding=spec.pop("padding", 0), norm=norm,
                           norm_params=norm_params(c_out), norm_eps=NORM_EPS[norm])
            if mpbn is not None:
                layer.mpbn = mpbn_params((c_out,) if mpbn == "channel" else layer.out_shape)
        elif kind == "pool2d":
            layer = Pool2d(shape, spec.pop("kernel", 2), spec.pop("stride", None),
                           spec.pop("mode", "max"))
        elif kind == "flatten":
            layer = Flatten(shape)
        else:
            raise ValueError(f"layers[{i}].kind must be conv2d, pool2d or flatten, not {kind!r}")
        if spec:
            raise ValueError(f"layers[{i}] has unknown fields {sorted(spec)}")
        layer.check(T, where=f"layers[{i}]")
        net.append(layer)
        shape = layer.out_shape
    n_in = int(np.prod(shape))
    net.append(Dense(rng.normal(0, weight_scale / np.sqrt(n_in), (classes, n_in)),
                     rng.normal(0, 0.2, classes), readout=True))
    return Network(net, T=T, tau=tau)


def example_currents(config, steps, seed=0, scale=0.6):
    """Random input currents (integers of ``config.current``), shape ``(steps, N)``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.2, scale, (steps, config.neurons))
    return config.current.quantize(x)


def add_core_arguments(parser, *, seed_option="--seed", lanes=True):
    """The command-line options that pick a folded core: ``--model`` or the built-in example.

    Shared by ``spikefold verilog``, ``cosim`` and ``build``; :func:`core_from_args` reads
    them. The example's seed lands in ``args.core_seed`` (``seed_option`` names the flag).
    """
    from .core import RESETS
    parser.add_argument("--model", metavar="FILE.npz",
                        help="folded core file (golden.corefile); default: the built-in example")
    if lanes:
        parser.add_argument("--lanes", "-P", type=int, default=4,
                            help="neurons updated per clock (default 4)")
    example = parser.add_argument_group("built-in example MPBN layer (without --model)")
    example.add_argument("--neurons", "-N", type=int, default=64, help="neurons N (default 64)")
    example.add_argument("-T", type=int, default=8, dest="T", help="timesteps per sample (8)")
    example.add_argument("--membrane", type=fixed_format, default=Fixed(16, 8),
                         help="membrane format bits.frac (default 16.8)")
    example.add_argument("--current", type=fixed_format, default=None,
                         help="input current format (default: the membrane's)")
    example.add_argument("--threshold", type=fixed_format, default=None,
                         help="stored threshold format (default: the membrane's)")
    example.add_argument("--tau", type=float, default=0.25,
                         help="leak factor; a power of two is a shift (default 0.25)")
    example.add_argument("--tau-bits", type=int, default=8,
                         help="fractional bits of a multiply leak (default 8)")
    example.add_argument("--reset", choices=RESETS, default="zero")
    example.add_argument("--affine", action="store_true", help="include the affine stage")
    example.add_argument("--channels", type=int, default=None,
                         help="affine channels (default 4 if N is a multiple, else 1)")
    example.add_argument(seed_option, type=int, default=0, dest="core_seed",
                         help="seed of the example's MPBN parameters (default 0)")


def core_from_args(args):
    """The :class:`FoldedCore` that :func:`add_core_arguments`' options describe."""
    from pathlib import Path
    if args.model:
        path = Path(args.model)
        if not path.is_file():
            raise FileNotFoundError(f"--model: no such file: {args.model}")
        return FoldedCore.load(path)
    return example_core(args.neurons, T=args.T, membrane=args.membrane, current=args.current,
                        threshold=args.threshold, tau=args.tau, tau_bits=args.tau_bits,
                        reset=args.reset, affine=args.affine, channels=args.channels,
                        seed=args.core_seed)
