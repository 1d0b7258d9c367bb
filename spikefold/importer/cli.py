"""``spikefold import``: a trained snnTorch/SpikingJelly/Norse module or a NIR file -> model file.

::

    spikefold import path/to/model.py:make_net --checkpoint net.pt -T 8 --data digits -o M.npz
    spikefold import path/to/conv.py:make_net -T 4 --input-shape 1,8,8 --data digits -o M.npz
    spikefold import graph.nir -T 8 --dt 1e-4 --data digits -o M.npz

``SRC`` is ``FILE.py:FUNCTION`` (the function, called without arguments, returns the
trained ``torch.nn.Module``; ``--checkpoint`` loads a ``state_dict`` into it) or a ``.nir``
file. A convolutional network needs ``--input-shape C,H,W``. The conversion table (source
module -> spikefold layer, every conversion applied) is printed and stored in the model
file's metadata. ``--data digits`` embeds scikit-learn digits (the split ``spikefold train``
uses) and calibrates the fixed-point formats on its training split, so that ``spikefold
eval`` can run on the file.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

__all__ = ["add_arguments", "run", "load_source"]


def add_arguments(p):
    p.add_argument("src", metavar="SRC",
                   help="FILE.py:FUNCTION returning the trained module, or a .nir file")
    p.add_argument("-o", "--out", required=True, metavar="M.npz", help="model file to write")
    p.add_argument("-T", "--T", type=int, default=None,
                   help="timesteps per sample (required for modules; NIR: default the "
                        "graph's spikefold_T)")
    p.add_argument("--dt", type=float, default=None,
                   help="NIR only: the Euler step the graph was made with (snnTorch: 1e-4)")
    p.add_argument("--input-shape", default=None, metavar="C,H,W",
                   help="per-sample input shape (default: the first layer's inputs)")
    p.add_argument("--checkpoint", default=None, metavar="CKPT",
                   help="a torch state_dict (or a dict with 'state_dict') to load")
    p.add_argument("--data", choices=("digits", "none"), default="none",
                   help="embed test data: scikit-learn digits (x = pixels / 16)")
    p.add_argument("--bits", type=int, default=16, help="fixed-point width (with --data)")
    p.add_argument("--weight-bits", type=int, default=None, help="weight width (with --data)")
    p.add_argument("--input-bits", type=int, default=8, help="input width (with --data)")


def _input_shape(text):
    if text is None:
        return None
    try:
        shape = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--input-shape must be comma-separated integers, not {text!r}") \
            from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"--input-shape must be positive integers, not {text!r}")
    return shape


def load_source(src, checkpoint=None):
    """The module returned by ``FILE.py:FUNCTION`` (with ``checkpoint`` loaded), in eval mode."""
    try:
        import torch
    except ModuleNotFoundError:
        raise RuntimeError("importing a PyTorch module needs torch: pip install -e "
                           "'.[train]'") from None
    path, sep, func = src.rpartition(":")
    if not sep or not path or not func:
        raise ValueError(f"SRC must be FILE.py:FUNCTION or a .nir file, not {src!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SRC file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"_spikefold_import_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent.resolve()))
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.pop(0)
    fn = getattr(mod, func, None)
    if not callable(fn):
        raise ValueError(f"{path} has no function {func!r}")
    module = fn()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"{src} returned a {type(module).__name__}, not a torch.nn.Module")
    if checkpoint is not None:
        ckpt = Path(checkpoint)
        if not ckpt.is_file():
            raise FileNotFoundError(f"--checkpoint {ckpt} does not exist")
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        if isinstance(state, dict):
            for key in ("state_dict", "model_state_dict", "model"):
                if isinstance(state.get(key), dict):
                    state = state[key]
                    break
        if not isinstance(state, dict):
            raise ValueError(f"--checkpoint {ckpt} holds a {type(state).__name__}, not a "
                             f"state_dict")
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise ValueError(f"--checkpoint {ckpt} does not fit {src}: {first}") from None
    return module.eval()


def run(args):
    from golden.modelfile import ModelFile

    from . import import_nir
    from .torch_walk import import_module

    input_shape = _input_shape(args.input_shape)
    module = None
    if args.T is not None and args.T < 1:
        raise ValueError(f"-T must be a positive integer, not {args.T}")
    if args.src.lower().endswith(".nir"):
        if args.checkpoint is not None:
            raise ValueError("--checkpoint applies to FILE.py:FUNCTION sources, not NIR files")
        network, table = import_nir(args.src, T=args.T, dt=args.dt)
    else:
        if args.T is None:
            raise ValueError("-T is required: snnTorch/SpikingJelly/Norse modules do not carry "
                             "it")
        module = load_source(args.src, args.checkpoint)
        network, table = import_module(module, T=args.T, input_shape=input_shape, dt=args.dt)
    network.meta["import"]["source"] = args.src
    print(table.markdown())
    kwargs = {}
    if args.data == "digits":
        from golden.calibrate import calibrate, evaluate
        from train.data import PIXEL_SCALE, SPLIT_SEED, TEST_FRACTION, load_digits_split

        if network.sizes[0] != 64:
            raise ValueError(f"--data digits gives 64 inputs, the model takes "
                             f"{network.sizes[0]}")
        xtr, ytr, xte, yte = load_digits_split()
        formats = calibrate(network, xtr * PIXEL_SCALE, bits=args.bits,
                            weight_bits=args.weight_bits, input_bits=args.input_bits)
        report = evaluate(network, formats, xte * PIXEL_SCALE, yte)
        print(report.markdown())
        if module is not None:
            from .check import agreement
            agree = agreement(network, module, xte * PIXEL_SCALE)
            print(agree.summary() + f" ({len(xte)} test samples)")
            network.meta["import"]["library_agreement"] = {
                "spikes": agree.spikes, "predictions": agree.predictions,
                "max_logit_error": agree.max_logit_error}
        kwargs = dict(formats=formats, calib_x=xtr, test_x=xte, test_y=yte,
                      data_name=(f"sklearn digits, stratified split test_size={TEST_FRACTION} "
                                 f"random_state={SPLIT_SEED}: calib = train split"),
                      pixel_scale=PIXEL_SCALE,
                      meta={"float_test_accuracy": report.float_accuracy,
                            "fixed_test_accuracy": report.fixed_accuracy})
    ModelFile(network, **kwargs).save(args.out)
    _check_saved(network, args.out)
    print(f"wrote {args.out}")
    return 0


def _check_saved(network, path):
    """Reload ``path``: its layers' neurons must be the imported ones (a model file version
    that cannot store per-layer neurons would change the network silently)."""
    from golden.modelfile import ModelFile

    loaded = ModelFile.load(path).network
    for i in range(len(network.layers) - 1):
        want, got = network.neuron(i), loaded.neuron(i)
        if want != got:
            Path(path).unlink()
            raise ValueError(f"the model file format cannot store layer{i}'s neuron {want} "
                             f"(it reads back as {got}); {path} was not written")
