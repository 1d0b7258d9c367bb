"""A pipelined multiplier: registered operands, registered product (latency 2).

:class:`PipelinedMultiply` computes ``p = a * b`` (Amaranth's product shape, never
truncated) through two register stages that move only while ``en`` is high: the operands
are registered at one enabled edge, their product at the next. Operands presented in the
cycle before enabled edge ``e`` -> product on ``p`` after enabled edge ``e + 1``; under a
stall (``en`` low) both stages hold. The registers have no reset (they start at 0, like
the ``reset_less`` pipeline registers around them).

Two implementations with identical cycle behaviour:

* ``"fabric"``: two Amaranth register stages around ``a * b``. Used for simulation, generic
  Verilog export and every family except ECP5 (Yosys maps the product as it likes).
* ``"ecp5"``: one Lattice ECP5 ``MULT18X18D`` instantiated directly with its input
  registers (``REG_INPUTA_CLK = REG_INPUTB_CLK = "CLK0"``) and its output register
  (``REG_OUTPUT_CLK = "CLK0"``), all three on clock enable ``CE0 = en``; no pipeline
  register, reset unused (``RST0`` tied low). Yosys's ``synth_ecp5`` maps a product to a
  purely combinational ``MULT18X18D`` and leaves the registers around it in the fabric:
  register -> routing -> ~3.9 ns of multiplier -> routing -> register, which limits an
  ECP5 design to ~110 MHz. With the registers inside the block only routing is left on
  either side (nextpnr times it as ``MULT18X18D_REGS_ALL``). Both operands are extended to
  18 bits signed (``SIGNEDA = SIGNEDB = 1``); the low bits of the 36-bit product are ``p``.

``implementation="auto"`` picks ``"ecp5"`` when elaborated for a platform whose ``family``
is ``"ecp5"`` (as :class:`hdl.bram.RegisteredMemory` does) and both operands fit the
primitive (:func:`fits_mult18x18`: signed operands at most 18 bits, unsigned at most 17),
else ``"fabric"``.
"""

from __future__ import annotations

from amaranth import ClockSignal, Const, Module, Shape, Signal
from amaranth.hdl import Instance
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["PipelinedMultiply", "IMPLEMENTATIONS", "MULT18X18_BITS", "fits_mult18x18",
           "product_shape"]

IMPLEMENTATIONS = ("auto", "fabric", "ecp5")
MULT18X18_BITS = 18     # operand bits of one MULT18X18D (signed)


def _shape(name, value):
    try:
        shape = Shape.cast(value)
    except TypeError:
        raise TypeError(f"{name} must be a shape (signed(n) or unsigned(n)), not {value!r}") \
            from None
    if shape.width < 1:
        raise ValueError(f"{name} must be at least 1 bit wide, not {shape!r}")
    return shape


def fits_mult18x18(a_shape, b_shape):
    """Whether both operand shapes fit an 18 x 18 signed multiplier (an unsigned operand
    needs one bit more for its zero sign)."""
    return all(s.width + (0 if s.signed else 1) <= MULT18X18_BITS
               for s in (Shape.cast(a_shape), Shape.cast(b_shape)))


def product_shape(a_shape, b_shape):
    """The shape of Amaranth's ``a * b`` for operands of these shapes (``p``'s shape)."""
    return (Signal(Shape.cast(a_shape)) * Signal(Shape.cast(b_shape))).shape()


class PipelinedMultiply(wiring.Component):
    """Multiply ``a`` by ``b`` with registered operands and a registered product.

    Parameters
    ----------
    a_shape, b_shape : shape-castable
        Operand shapes (``signed(n)`` or ``unsigned(n)``).
    implementation : str
        ``"auto"``, ``"fabric"`` or ``"ecp5"`` (see the module docstring).

    Attributes
    ----------
    a : In(a_shape)
    b : In(b_shape)
        Operands, registered at the enabled edge.
    en : In(1)
        Clock enable of both register stages (the pipeline enable).
    p : Out(product_shape(a_shape, b_shape))
        The product of the operands registered two enabled edges ago (a register).

    Raises
    ------
    TypeError
        An operand shape is not a shape.
    ValueError
        An unknown ``implementation``, or ``"ecp5"`` for operands that do not fit.
    """

    latency = 2

    def __init__(self, a_shape, b_shape, *, implementation="auto"):
        a_shape, b_shape = _shape("a_shape", a_shape), _shape("b_shape", b_shape)
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}, "
                             f"not {implementation!r}")
        if implementation == "ecp5" and not fits_mult18x18(a_shape, b_shape):
            raise ValueError(f"operands {a_shape!r} x {b_shape!r} do not fit one MULT18X18D "
                             f"(signed at most 18 bits, unsigned at most 17)")
        self._a_shape, self._b_shape = a_shape, b_shape
        self._implementation = implementation
        super().__init__({"a": In(a_shape), "b": In(b_shape), "en": In(1),
                          "p": Out(product_shape(a_shape, b_shape))})

    @property
    def a_shape(self):
        return self._a_shape

    @property
    def b_shape(self):
        return self._b_shape

    def implementation_for(self, platform):
        """The implementation used when elaborated for ``platform``."""
        if self._implementation != "auto":
            return self._implementation
        if (getattr(platform, "family", None) == "ecp5"
                and fits_mult18x18(self._a_shape, self._b_shape)):
            return "ecp5"
        return "fabric"

    def elaborate(self, platform):
        if self.implementation_for(platform) == "ecp5":
            return self._elaborate_ecp5()
        return self._elaborate_fabric()

    def _elaborate_fabric(self):
        m = Module()
        a = Signal(self._a_shape, name="a_reg", reset_less=True)
        b = Signal(self._b_shape, name="b_reg", reset_less=True)
        p = Signal(self.p.shape(), name="p_reg", reset_less=True)
        with m.If(self.en):
            m.d.sync += [a.eq(self.a), b.eq(self.b), p.eq(a * b)]
        m.d.comb += self.p.eq(p)
        return m

    def _elaborate_ecp5(self):
        m = Module()
        n = MULT18X18_BITS
        # Sign- or zero-extended to 18 bits signed: SIGNEDA = SIGNEDB = 1 always.
        a = Signal(Shape(n, signed=True), name="dsp_a")
        b = Signal(Shape(n, signed=True), name="dsp_b")
        p = Signal(Shape(2 * n, signed=True), name="dsp_p")
        m.d.comb += [a.eq(self.a), b.eq(self.b), self.p.eq(p[:self.p.shape().width])]
        zero = Const(0, 1)
        kwargs = {
            "p_REG_INPUTA_CLK": "CLK0", "p_REG_INPUTA_CE": "CE0", "p_REG_INPUTA_RST": "RST0",
            "p_REG_INPUTB_CLK": "CLK0", "p_REG_INPUTB_CE": "CE0", "p_REG_INPUTB_RST": "RST0",
            "p_REG_INPUTC_CLK": "NONE",
            "p_REG_PIPELINE_CLK": "NONE",
            "p_REG_OUTPUT_CLK": "CLK0", "p_REG_OUTPUT_CE": "CE0", "p_REG_OUTPUT_RST": "RST0",
            "p_CLK0_DIV": "ENABLED", "p_CLK1_DIV": "ENABLED", "p_CLK2_DIV": "ENABLED",
            "p_CLK3_DIV": "ENABLED", "p_HIGHSPEED_CLK": "NONE", "p_GSR": "DISABLED",
            "p_CAS_MATCH_REG": "FALSE", "p_SOURCEB_MODE": "B_SHIFT",
            "p_MULT_BYPASS": "DISABLED", "p_RESETMODE": "SYNC",
            "i_SIGNEDA": Const(1, 1), "i_SIGNEDB": Const(1, 1),
            "i_SOURCEA": zero, "i_SOURCEB": zero,
            "i_CLK0": ClockSignal(), "i_CE0": self.en, "i_RST0": zero,
        }
        # CLK1-3, CE1-3, RST1-3 and the shift inputs SRIA/SRIB stay unconnected: SRIA/SRIB
        # are the dedicated cascade wires from the neighbouring block, which the fabric
        # cannot reach (nextpnr fails to route a constant to them).
        for i in range(n):
            kwargs[f"i_A{i}"] = a[i]
            kwargs[f"i_B{i}"] = b[i]
            kwargs[f"i_C{i}"] = zero
        for i in range(2 * n):
            kwargs[f"o_P{i}"] = p[i]
        m.submodules.mult18x18d = Instance("MULT18X18D", **kwargs)
        return m
