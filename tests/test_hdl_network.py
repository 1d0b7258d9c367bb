# amaranth: UnusedElaboratable=no
# (test_bad_arguments builds components whose __init__ raises: nothing to elaborate.)
"""hdl.network: every layer's currents and spikes and the final logits/class equal
golden.network.IntegerNetwork, bit for bit, under random gaps and backpressure."""

from __future__ import annotations

import json

import numpy as np
import pytest
from amaranth.sim import Simulator

from golden.calibrate import calibrate
from golden.core import from_beats
from golden.modelfile import DEFAULT_MODEL, load_default
from golden.examples import example_network
from golden.network import IntegerNetwork
from hdl.mapping import HardwareMapping
from hdl.network import SpikingNetwork, export_network_verilog


# -- networks --------------------------------------------------------------------------------

def random_network(sizes, *, T=4, norm="tdbn", mpbn=True, seed=0, bits=12, weight_bits=8,
                   tau=0.25, calib_scale=1.0):
    """A random trained-looking network, calibrated to ``bits``-bit formats."""
    net = example_network(sizes, norm=norm, mpbn=mpbn, T=T, tau=tau, seed=seed)
    # ``calib_scale`` < 1 calibrates on weaker inputs than the tests use: saturation.
    rng = np.random.default_rng(seed + 1000)
    calib = rng.integers(0, 17, (32, sizes[0])) / 16.0 * calib_scale
    formats = calibrate(net, calib, bits=bits, weight_bits=weight_bits, headroom=1.0)
    return IntegerNetwork.from_folded(net.fold(), formats)


def random_samples(inet, n, seed=1, zeros=0.4):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 17, (n, inet.layers[0].n_in)) / 16.0
    x[rng.random(x.shape) < zeros] = 0.0
    return x


# -- simulation harness ----------------------------------------------------------------------

def simulate(dut, x_q, *, seed=0, gap=0.0, backpressure=0.0, monitor=True, limit=None):
    """Stream the quantized samples ``x_q`` (S, n_in) through ``dut``.

    Returns a dict: ``label`` (S,), ``logits`` (S, classes), ``currents[l]`` (every
    transferred current beat of DenseStage l), ``spikes[l]``/``membrane[l]`` (every beat out
    of LIFArray l), ``first_in``/``result`` (cycle of each sample's first accepted pixel
    beat / of its result transfer), ``cycles``.
    """
    rng = np.random.default_rng(seed)
    Q = dut.in_lanes
    beats = []
    for x in x_q:
        padded = np.zeros(dut.in_beats * Q, dtype=np.int64)
        padded[:len(x)] = x
        beats.extend(padded.reshape(-1, Q).tolist())
    S = len(x_q)
    out = {"label": [], "logits": [], "first_in": [], "result": [],
           "currents": [[] for _ in dut.dense], "spikes": [[] for _ in dut.lif],
           "membrane": [[] for _ in dut.lif]}
    limit = limit or 400_000

    async def testbench(ctx):
        i = cycle = 0
        while len(out["label"]) < S:
            if cycle > limit:
                raise AssertionError(f"no progress after {cycle} cycles (beat {i}/{len(beats)}, "
                                     f"{len(out['label'])}/{S} results)")
            valid = i < len(beats) and rng.random() >= gap
            ctx.set(dut.i_pixels.valid, valid)
            if i < len(beats):
                ctx.set(dut.i_pixels.payload, beats[i])
            ready = bool(rng.random() >= backpressure)
            ctx.set(dut.o_result.ready, ready)
            if valid and ctx.get(dut.i_pixels.ready):
                if i % dut.in_beats == 0:
                    out["first_in"].append(cycle)
                i += 1
            if ready and ctx.get(dut.o_result.valid):
                r = ctx.get(dut.o_result.payload)
                out["label"].append(int(r.label))
                out["logits"].append([int(v) for v in r.logits])
                out["result"].append(cycle)
            if monitor:
                for l, stage in enumerate(dut.dense):
                    s = stage.o_current
                    if ctx.get(s.valid) and ctx.get(s.ready):
                        out["currents"][l].append([int(v) for v in ctx.get(s.payload)])
                for l, array in enumerate(dut.lif):
                    s = array.o_spikes
                    if ctx.get(s.valid) and ctx.get(s.ready):
                        p = ctx.get(s.payload)
                        out["spikes"][l].append([(int(p.spikes) >> q) & 1
                                                 for q in range(array.lanes)])
                        out["membrane"][l].append([int(v) for v in p.membrane])
            cycle += 1
            await ctx.tick()
        out["cycles"] = cycle

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return out


def golden_trace(inet, x):
    """Golden per-sample, per-timestep currents (S*T, n), spikes and v_pre of every layer,
    and the logits and classes."""
    res = inet.run(x, per_sample=True)
    T, S = inet.T, len(x)
    currents = [c.transpose(1, 0, 2).reshape(S * T, -1) for c in res.currents_q]
    spikes = [s.transpose(1, 0, 2).reshape(S * T, -1).astype(np.int64) for s in res.spikes]
    v_pre = []
    for l, layer in enumerate(inet.layers[:-1]):
        core = layer.core()
        v_pre.append(np.stack([core.step(c).v_pre for c in currents[l]]))
    return {"currents": currents, "spikes": spikes, "v_pre": v_pre,
            "logits": res.logits_q, "label": res.predict()}


def compare(dut, got, want):
    """Assert every observed beat equals golden; first mismatch named by layer/sample/t."""
    T = dut.T
    for l, layer in enumerate(dut.network.layers):
        c = from_beats(np.array(got["currents"][l]), layer.n_out)
        w = want["currents"][l]
        assert c.shape == w.shape, f"layer{l} currents: {c.shape} beats-as-steps, want {w.shape}"
        bad = np.argwhere(c != w)
        if len(bad):
            st, n = (int(v) for v in bad[0])
            raise AssertionError(f"layer{l} current: sample {st // T} t {st % T} neuron {n}: "
                                 f"expected {int(w[st, n])}, got {int(c[st, n])}")
    for l in range(len(dut.lif)):
        n = dut.network.layers[l].n_out
        for key, wkey in (("spikes", "spikes"), ("membrane", "v_pre")):
            g = from_beats(np.array(got[key][l]), n)
            w = want[wkey][l]
            assert g.shape == w.shape, f"layer{l} {key}: {g.shape}, want {w.shape}"
            bad = np.argwhere(g != w)
            if len(bad):
                st, i = (int(v) for v in bad[0])
                raise AssertionError(f"layer{l} {key}: sample {st // T} t {st % T} neuron {i}: "
                                     f"expected {int(w[st, i])}, got {int(g[st, i])}")
    np.testing.assert_array_equal(np.array(got["logits"]), want["logits"], err_msg="logits")
    np.testing.assert_array_equal(np.array(got["label"]), want["label"], err_msg="class")


def run_and_compare(inet, lanes, x, *, in_lanes=1, seed=0, gap=0.3, backpressure=0.3,
                    outreg=None, slices=None, flow=None):
    mapping = HardwareMapping.for_network(inet, lanes, in_lanes, outreg, slices=slices,
                                          flow=flow)
    dut = SpikingNetwork(inet, mapping)
    x_q, _ = inet.quantize_input(x)
    got = simulate(dut, x_q, seed=seed, gap=gap, backpressure=backpressure)
    want = golden_trace(inet, x)
    compare(dut, got, want)
    return dut, got, want


# -- tests -----------------------------------------------------------------------------------

NETWORKS = [
    # sizes, T, norm, mpbn, lanes, in_lanes, tau
    ((6, 5, 3), 3, "tdbn", True, 1, 1, 0.25),
    ((10, 8, 7, 4), 4, "bntt", True, [3, 7, 2], 4, 0.5),
    ((9, 12, 5), 2, "tebn", False, [5, 2], 3, 0.3),           # multiply leak + affine
    ((16, 6, 6, 6, 3), 5, "tdbn", True, [2, 6, 1, 3], 16, 0.25),
    ((4, 3, 2), 1, "bn", False, [3, 1], 2, 0.25),              # T = 1
    ((5, 3), 3, "none", False, [2], 5, 0.25),                  # readout only
]


@pytest.mark.parametrize("outreg, flow", [(False, "stall"), (True, "stall"), (True, "credit")],
                         ids=["plain", "outreg+slices", "credit"])
@pytest.mark.parametrize("case", range(len(NETWORKS)))
def test_random_network_matches_golden(case, outreg, flow):
    """The pipelines: the original one (no registered memory outputs, stages chained
    directly), registered memory outputs with a register slice on every link, and that
    with the dense engines' credit flow."""
    sizes, T, norm, mpbn, lanes, in_lanes, tau = NETWORKS[case]
    seed = 100 + case
    inet = random_network(sizes, T=T, norm=norm, mpbn=mpbn, seed=seed, tau=tau)
    x = random_samples(inet, 4, seed=seed)
    x[1] = 0.0                                     # an all-zero sample: biases only
    dut, got, want = run_and_compare(inet, lanes, x, in_lanes=in_lanes, seed=seed,
                                     outreg=outreg, slices=outreg, flow=flow)
    assert all(stage.flow == flow for stage in dut.dense)
    assert all(array.flow == flow for array in dut.lif)
    assert all(array.latency == (7 if array.config.affine else 6 if
                                 array.config.leak_shift is None else 5) - (not outreg)
               for array in dut.lif)
    # The tests must exercise spikes and silence.
    if want["spikes"]:
        spikes = np.concatenate([s.ravel() for s in want["spikes"]])
        assert 0 < spikes.mean() < 1


def test_random_network_saturates_and_ties():
    """Narrow formats: saturated currents and membranes; logits with a tie for the max."""
    inet = random_network((8, 10, 4), T=3, seed=7, bits=8, weight_bits=6, calib_scale=0.3)
    x = random_samples(inet, 3, seed=7, zeros=0.1)
    r = inet.run(x, per_sample=True)
    assert r.saturations[0]["current"] > 0 and r.saturations[0]["membrane"] > 0
    run_and_compare(inet, [4, 2], x, in_lanes=2, seed=7)
    # Force a tie: the readout's two rows identical -> equal logits, class 0 must win.
    last = inet.layers[-1]
    last.W_q[1] = last.W_q[0]
    last.bias_q[1] = last.bias_q[0]
    r = inet.run(x, per_sample=True)
    assert np.all(r.logits_q[:, 0] == r.logits_q[:, 1])
    dut, got, want = run_and_compare(inet, [4, 2], x, in_lanes=2, seed=8)
    assert all(label != 1 for label in got["label"])


@pytest.mark.parametrize("C,P,T", [(10, 10, 4), (10, 3, 2), (5, 2, 3), (1, 1, 2), (7, 7, 1)])
def test_readout_argmax_ties_to_lowest_index(C, P, T):
    """The two-stage argmax scan against ``np.argmax`` (ties to the lowest index) on
    logits with many ties (currents in -2..2, so equal maxima at every position), the
    samples back to back with output backpressure."""
    from hdl.network import Readout
    seed = 40 + C * 10 + P
    rng = np.random.default_rng(seed)
    S, B = 24, -(-C // P)
    cur = rng.integers(-2, 3, (S, T, B * P))
    cur[0] = 0                                   # every class tied: class 0
    cur[1, :, :C - 1], cur[1, :, C - 1] = -1, 1  # the last class alone on top
    want = cur[:, :, :C].sum(axis=1)
    beats = cur.reshape(S * T * B, P).tolist()
    dut = Readout(C, P, T, 4)
    got = []

    async def testbench(ctx):
        i = 0
        while len(got) < S:
            ctx.set(dut.i_current.valid, i < len(beats))
            if i < len(beats):
                ctx.set(dut.i_current.payload, beats[i])
            ready = bool(rng.random() >= 0.3)
            ctx.set(dut.o_result.ready, ready)
            if i < len(beats) and ctx.get(dut.i_current.ready):
                i += 1
            if ready and ctx.get(dut.o_result.valid):
                r = ctx.get(dut.o_result.payload)
                got.append((int(r.label), [int(v) for v in r.logits]))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    assert [g[1] for g in got] == want.tolist(), f"seed {seed}: logits"
    assert [g[0] for g in got] == np.argmax(want, axis=1).tolist(), f"seed {seed}: label"
    if C > 1:                                                          # ties exercised
        assert sum(int((w == w.max()).sum() > 1) for w in want) > S // 4


@pytest.fixture(scope="module")
def digits():
    if not DEFAULT_MODEL.exists():
        pytest.skip("the embedded digits model is not there yet")
    return load_default()


@pytest.mark.parametrize("flow", ["stall", "credit"])
def test_digits_model_matches_golden(digits, flow):
    """Three digits test samples through the embedded model, every layer compared."""
    inet = digits.integer()
    x = digits.inputs(digits.test_x[:3])
    dut, got, want = run_and_compare(inet, [16, 16, 10], x, in_lanes=8, seed=11, gap=0.2,
                                     backpressure=0.2, flow=flow)
    assert list(got["label"]) == list(want["label"])


def test_export_network_verilog(tmp_path):
    inet = random_network((6, 5, 3), T=2, seed=3)
    v1, j1 = export_network_verilog(inet, 2, tmp_path / "a", name="net", in_lanes=1)
    v2, _ = export_network_verilog(inet, 2, tmp_path / "b", name="net", in_lanes=1)
    text = v1.read_text()
    assert text == v2.read_text(), "the Verilog is not reproducible"
    assert "module net(" in text and str(tmp_path) not in text
    desc = json.loads(j1.read_text())
    assert desc["format"] == "spikefold-network-rtl" and desc["sizes"] == [6, 5, 3]
    assert desc["lanes"] == [2, 2] and desc["T"] == 2
    assert desc["outreg"] is True and desc["slices"] is True and desc["in_lanes"] == 1
    # The co-simulation's monitors: the LIF array's o_spikes signals inside the hierarchy.
    (mon,) = desc["monitors"]
    assert (mon["layer"], mon["instance"], mon["lanes"], mon["beats"]) == (0, "lif0", 2, 3)
    module = text[text.index("module \\net.lif0"):]
    module = module[:module.index("endmodule")]
    for signal in (mon["valid"], mon["ready"], mon["payload"]):
        assert f" {signal};" in module, signal
    assert [st["name"] for st in desc["plan"]["stages"]] == ["dense0", "lif0", "dense1",
                                                             "readout"]
    assert desc["ports"]["i_pixels__payload"] == {"dir": "in", "width": 8}
    lb = desc["logit_bits"]
    assert desc["ports"]["o_result__payload"]["width"] == 2 + 3 * lb
    fields = {f["name"]: f for f in desc["fields"]["o_result__payload"]}
    assert fields["logits"] == {"name": "logits", "offset": 2, "width": lb, "count": 3,
                                "signed": True}


def test_bad_arguments():
    inet = random_network((6, 5, 3), T=2, seed=3)
    with pytest.raises(TypeError, match="IntegerNetwork"):
        SpikingNetwork("net", 1)
    with pytest.raises(ValueError, match="lanes must be a positive integer, not 0"):
        SpikingNetwork(inet, 0)
    with pytest.raises(ValueError, match="lanes lists 3 values, the network has 2 layers"):
        SpikingNetwork(inet, [1, 1, 1])
    with pytest.raises(ValueError, match="layer1: lanes 4 exceeds"):
        SpikingNetwork(inet, [1, 4])
    with pytest.raises(ValueError, match="layer0: in_lanes 7 exceeds"):
        SpikingNetwork(inet, 1, in_lanes=7)
