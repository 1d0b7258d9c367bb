"""``spikefold run``: classify images with a trained network on a real board, over its UART.

::

    spikefold run --model M.npz --board B --port /dev/ttyUSB0 [--images X.npy | --samples N]
                  [--lanes L]

1. Builds the network host-link bitstream (:class:`boards.top.NetworkBoardTop`: the whole
   :class:`hdl.network.SpikingNetwork` behind :class:`hdl.host_link.NetworkLink`, at the
   board clock) with the YoWASP toolchain into ``--out`` (default ``build/<board>-run``),
   or reuses the one there when its ``build.json`` says it was built for the same network
   (:func:`hdl.protocol.network_fingerprint`), board, baud rate, buffer and mapping.
2. Says where the bitstream is and how to program it (openFPGALoader, iceprog, dfu-util).
3. Opens the port, checks that the board runs this network (NET_STATUS), writes the
   weights the build placed in SPRAM (``build.json``'s ``memory``: SPRAM has no contents
   after configuration; :meth:`boards.host.NetworkHost.load_weights`), classifies the
   images (:class:`boards.host.NetworkHost`) and prints how many labels and logits equal
   golden's :class:`golden.network.IntegerNetwork` and the accuracy of both.

``--lanes`` is the mapping's lanes (one for every layer, or one per layer): the digits MLP
fits the iCEBreaker's UP5K with ``--lanes 1`` (every weight memory in SPRAM). Without a
``build.json`` (``--no-build`` into an empty ``--out``) the memory placement is computed
as the build would record it (:func:`boards.build.network_memory`).

``X.npy`` holds network inputs ``x`` as ``spikefold eval --inputs`` takes them; the default
is the model's test data (with its labels). ``--build-only`` stops after step 2 (no port
needed); ``--no-build`` skips step 1 (the board is already programmed). Exit status: 0
when every label and logit equals golden, 1 when one differs, 2 on an error.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

__all__ = ["add_arguments", "run", "build_info", "ensure_bitstream", "program_commands",
           "weights_to_load"]


def add_arguments(parser):
    from boards.targets import TARGETS
    parser.add_argument("--model", required=True, metavar="M.npz",
                        help="network model file (spikefold train / spikefold import)")
    parser.add_argument("--board", required=True, choices=sorted(TARGETS), help="target board")
    parser.add_argument("--port", help="serial port of the board (e.g. /dev/ttyUSB0, COM3, "
                                       "or a pyserial URL)")
    parser.add_argument("--images", metavar="X.npy",
                        help="network inputs x (n x input shape); default: the model's test data")
    parser.add_argument("--labels", metavar="Y.npy", help="labels of --images")
    parser.add_argument("--samples", type=int, default=0,
                        help="classify only the first N images (default 0: all)")
    parser.add_argument("--out", "-o", default=None,
                        help="build directory (default build/<board>-run)")
    parser.add_argument("--baudrate", type=int, default=115200, help="UART baud rate")
    parser.add_argument("--buffer-bytes", type=int, default=None,
                        help="largest CLASSIFY payload (default 512 or one image)")
    parser.add_argument("--lanes", default=None,
                        help="lanes of every layer, or one per layer (e.g. 1, or 16,16,10); "
                             "default: the default mapping")
    parser.add_argument("--bits", type=int, default=16,
                        help="width when the model has no stored formats (default 16)")
    parser.add_argument("--counts", action="store_true",
                        help="also read and check the per-layer spike counts")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for each reply (default 5)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--build-only", action="store_true",
                       help="build (or reuse) the bitstream and say how to program it; no port")
    group.add_argument("--no-build", action="store_true",
                       help="skip the build: the board is already programmed")


def build_info(inet, mapping, target, *, baudrate, buffer_bytes):
    """The build.json fields that identify a network host-link bitstream."""
    from hdl.protocol import NetworkLayout
    layout = NetworkLayout.for_network(inet, buffer_bytes=buffer_bytes)
    return {"top": "network-uart", "board": target.name,
            "fingerprint": f"0x{layout.fingerprint:08x}", "baudrate": baudrate,
            "buffer_bytes": layout.buffer_bytes, "counts": layout.counts,
            **mapping.to_json()}


def _matches(old, want):
    return all(old.get(k) == v for k, v in want.items())


def ensure_bitstream(inet, mapping, target, out, *, baudrate=115200, buffer_bytes=None,
                     log=print):
    """Build the network host-link top of ``inet`` for ``target`` in ``out``, or reuse the
    bitstream there if it was built for the same network and settings. Returns
    ``(build.json dict, bitstream path, reused)``."""
    from boards.build import _base_info, _build, network_memory
    from boards.top import NetworkBoardTop
    out = Path(out)
    want = build_info(inet, mapping, target, baudrate=baudrate, buffer_bytes=buffer_bytes)
    info_path = out / "build.json"
    if info_path.is_file():
        try:
            old = json.loads(info_path.read_text())
        except ValueError:
            old = {}
        bitfile = out / str(old.get("bitstream", ""))
        if old.get("built") and _matches(old, want) and bitfile.is_file():
            log(f"reusing {bitfile} (built for this network: fingerprint {want['fingerprint']})")
            return old, bitfile, True
    mem = network_memory(inet, mapping, target)
    platform = target.make_platform()
    top = NetworkBoardTop(inet, mapping, baudrate=baudrate, buffer_bytes=buffer_bytes,
                          uart_resource=target.uart)
    sizes = [int(np.prod(inet.input_shape))] + [int(np.prod(layer.out_shape))
                                                for layer in inet.layers]
    info = _base_info(target)
    info.update(want, sizes=sizes, T=inet.T, memory=mem,
                clock_mhz=platform.default_clk_frequency / 1e6)
    info = _build(platform, top, target, out, info, timing_allow_fail=False,
                  plan_only=False, log=log,
                  what="the " + "-".join(map(str, sizes)) + " network host-link top")
    return info, out / info["bitstream"], False


def weights_to_load(inet, mapping, target, out, info=None):
    """The layers whose weights the board holds in SPRAM (loaded by the host): from the
    build's ``build.json`` (``info``, else the one in ``out``), else from the memory
    placement a build would record."""
    from boards.build import network_memory
    from boards.host import spram_layers
    if info is None:
        path = Path(out) / "build.json"
        if path.is_file():
            try:
                info = json.loads(path.read_text())
            except ValueError:
                info = None
    if info is not None and "memory" in info:
        return spram_layers(info)
    return spram_layers(network_memory(inet, mapping, target))


def program_commands(target, bitfile):
    """How to load ``bitfile`` onto ``target``: ``[(what, command line)]``."""
    bitfile = str(bitfile)
    if target.name.startswith("ulx3s"):
        return [("program into SRAM (lost at power-off)", f"openFPGALoader -b ulx3s {bitfile}"),
                ("program into flash", f"openFPGALoader -b ulx3s -f {bitfile}"),
                ("or with fujprog", f"fujprog {bitfile}")]
    if target.name == "icebreaker":
        return [("program into flash", f"iceprog {bitfile}"),
                ("or with openFPGALoader", f"openFPGALoader -b icebreaker {bitfile}")]
    if target.name.startswith("orangecrab"):
        dfu = str(Path(bitfile).with_suffix(".dfu"))
        return [("hold the button while plugging it in, then program",
                 f"dfu-util -D {dfu}")]
    return [("program with the vendor's tools", bitfile)]


def _first_mismatch(got, want):
    bad = np.argwhere(np.asarray(got) != np.asarray(want))
    if not len(bad):
        return None
    where = tuple(int(v) for v in bad[0])
    return f"image {where[0]}" + (f" index {where[1]}" if len(where) > 1 else "") + \
        f": board {np.asarray(got)[where]}, golden {np.asarray(want)[where]}"


def run(args):
    from boards.host import NetworkHost, ProtocolError
    from boards.netbench import parse_lanes
    from boards.targets import get_target
    from hdl.mapping import HardwareMapping
    from spikefold.flow import integer_network, load_model, model_inputs
    if not args.build_only and not args.port:
        raise ValueError("--port is required (the board's serial port), unless --build-only")
    if args.baudrate <= 0:
        raise ValueError(f"--baudrate must be positive, not {args.baudrate}")
    if args.timeout <= 0:
        raise ValueError(f"--timeout must be positive, not {args.timeout}")
    target = get_target(args.board)
    if not target.open_toolchain:
        raise ValueError(f"--board {args.board}: its bitstream needs the vendor's closed "
                         f"toolchain; spikefold run supports the YoWASP boards")
    model = load_model(args.model)
    x, y = model_inputs(model, args.images, args.labels, args.samples)
    inet = integer_network(model, args.bits)
    mapping = HardwareMapping.for_network(inet, parse_lanes(args.lanes))
    out = Path(args.out or Path("build") / f"{target.name}-run")
    info = None
    if not args.no_build:
        info, bitfile, _ = ensure_bitstream(inet, mapping, target, out,
                                            baudrate=args.baudrate,
                                            buffer_bytes=args.buffer_bytes)
        r = info.get("results") or {}
        if r:
            logic = (f"{r['logic_cells']} logic cells" if r.get("logic_cells") is not None
                     else f"{r.get('luts')} LUTs")
            print(f"{target.name}: {logic}, {r.get('bram_blocks')} BRAM, Fmax "
                  f"{r.get('fmax_main_mhz')} MHz (board clock {info.get('clock_mhz')} MHz)")
        print(f"bitstream: {bitfile}")
        for what, command in program_commands(target, bitfile):
            print(f"  {what}: {command}")
    if args.build_only:
        return 0
    preload = weights_to_load(inet, mapping, target, out, info)

    try:
        host = NetworkHost.open(args.port, inet, mapping=mapping, preload=preload,
                                baudrate=args.baudrate, timeout=args.timeout)
    except ProtocolError as exc:
        raise RuntimeError(f"--port {args.port}: {exc}; is the board programmed with the "
                           f"bitstream above and is this its serial port?") from None
    except OSError as exc:
        raise RuntimeError(f"--port {args.port}: cannot open it ({exc.strerror or exc})") \
            from None
    try:
        if preload:
            t0 = time.monotonic()
            words = host.load_weights()
            print(f"loaded {words} weight words (layers {', '.join(map(str, preload))}, in "
                  f"SPRAM) in {time.monotonic() - t0:.2f} s")
        t0 = time.monotonic()
        got = host.classify(x, counts=args.counts)
        elapsed = time.monotonic() - t0
    finally:
        host.close()
    res = inet.run(x)
    labels, logits = res.predict(), res.logits_q
    n = len(x)
    same_labels = int(np.sum(got.labels == labels))
    same_logits = int(np.sum(np.all(got.logits_q == logits, axis=1)))
    print(f"classified {n} images on {target.name} via {args.port} in {elapsed:.2f} s "
          f"({n / elapsed if elapsed else float('inf'):.1f} images/s)")
    print(f"labels equal golden: {same_labels}/{n}; logits equal golden: {same_logits}/{n}")
    ok = same_labels == n and same_logits == n
    if args.counts:
        want = np.stack([s.reshape(s.shape[:2] + (-1,)).sum(axis=(0, 2)) for s in res.spikes],
                        axis=1)
        same_counts = int(np.sum(np.all(got.spike_counts == want, axis=1)))
        print(f"spike counts equal golden: {same_counts}/{n} (mean per layer "
              f"{', '.join(f'{v:.1f}' for v in got.spike_counts.mean(axis=0))})")
        ok = ok and same_counts == n
    if y is not None:
        print(f"accuracy: board {np.mean(got.labels == y):.2%}, golden "
              f"{np.mean(labels == y):.2%} ({n} labelled images)")
    for what, g, w in (("label", got.labels, labels), ("logits", got.logits_q, logits)):
        first = _first_mismatch(g, w)
        if first:
            print(f"first {what} mismatch: {first}")
    return 0 if ok else 1
