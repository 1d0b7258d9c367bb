"""``spikefold export M.npz -o G.nir``: a model file as a NIR graph for another library.

``--target`` chooses whose importer the graph is written for (:func:`golden.nir_io.to_nir`):
``spikefold`` (reads back bit for bit; ``--dt`` required), ``snntorch`` (its
``import_from_nir`` assumes dt = 1e-4) or ``norse`` (its ``from_nir`` ignores ``r``; dt
1e-3 by default). Anything a target cannot express is refused in one line naming the layer.
"""

from __future__ import annotations

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    parser.add_argument("model", help="a spikefold-network model file (.npz)")
    parser.add_argument("--out", "-o", required=True, help="the NIR file to write (.nir)")
    parser.add_argument("--target", choices=("spikefold", "snntorch", "norse"),
                        default="spikefold", help="the importer the graph is for "
                        "(default spikefold)")
    parser.add_argument("--dt", type=float, default=None,
                        help="time step in seconds written into the graph (required for "
                             "--target spikefold; snntorch: 1e-4; norse: default 1e-3)")


def run(args):
    from golden.modelfile import ModelFile
    from golden.nir_io import write_nir
    if args.dt is not None and not args.dt > 0:
        raise ValueError(f"--dt must be a positive number of seconds, not {args.dt!r}")
    if args.target == "spikefold" and args.dt is None:
        raise ValueError("--dt is required for --target spikefold (the graph states its "
                         "time step; e.g. --dt 1e-3)")
    from pathlib import Path
    model = ModelFile.load(args.model)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_nir(args.out, model.network, dt=args.dt, target=args.target)
    print(f"wrote {args.out} ({len(model.network.layers)} layers, target {args.target}"
          f"{'' if args.dt is None else f', dt {args.dt:g} s'})")
    return 0
