"""The stage-to-stage tensor layout: the one place that defines it.

Every link between two hardware stages of :class:`hdl.network.SpikingNetwork` is an
``amaranth.lib.stream`` (``payload``/``valid``/``ready``, a transfer when both are high in
a cycle) carrying one tensor per timestep, cut into beats:

Flatten order
    A stage's tensor is a flat vector of ``n`` elements. A dense layer's vector is its
    neuron index ``i``. A feature map of shape ``(C, H, W)`` (the convolution stages to
    come) flattens channel-major, as NumPy's C order, PyTorch's ``flatten`` and NIR's
    ``Flatten`` of a batch-free tensor: element ``(c, y, x)`` is ``i = (c * H + y) * W + x``
    (:func:`flat_index`). The network input ``x`` of a sample is flattened the same way.

Beat order
    With ``P`` lanes a vector of ``n`` elements is ``B = ceil(n / P)`` beats; beat ``k``
    carries elements ``k * P .. k * P + P - 1``, lane ``p`` element ``k * P + p``
    (:func:`element`); lanes past ``n`` in the last beat are padding (zero currents,
    spikes, counts, membranes read as 0; a receiver ignores them). Lane ``p`` of a packed
    word is at bits ``[p * w, (p + 1) * w)``. :func:`golden.core.to_beats` /
    :func:`golden.core.from_beats` convert in software.

Time order
    Beats ``0 .. B - 1`` of timestep ``t`` come before any beat of ``t + 1``; a sample is
    ``T`` timesteps ``0 .. T - 1``; samples follow back to back with no marker: every stage
    counts beats and timesteps, and a LIF array starts the next sample with zero membranes
    when its timestep counter wraps from ``T - 1`` to 0 (its ``clear`` input is not used in
    a network). The analog network input is one vector per sample (direct encoding, the
    same ``x_q`` at every step): ``ceil(n_in / in_lanes)`` pixel beats, which dense stage 0
    computes once and replays ``T`` times.

Payloads
    ==================  ============================================================
    link                payload of one beat
    ==================  ============================================================
    input -> dense 0    ``ArrayLayout(signed(Bx), in_lanes)``: ``x_q`` (``i_pixels``)
    dense -> LIF        ``ArrayLayout(signed(Bc), P)``: ``c_q`` (``o_current`` ->
                        ``i_current``)
    LIF -> dense        :func:`hdl.lif_array.output_layout`; the next stage takes its
                        ``spikes`` field, ``unsigned(P)`` with bit ``p`` = lane ``p``
                        (``o_spikes`` -> ``i_spikes``); ``membrane`` (``v_pre``), ``t``,
                        ``beat``, ``last`` are for monitors
    dense -> readout    as dense -> LIF
    pool -> conv/dense  ``ArrayLayout(unsigned(w), P)``: counts ``0 .. out_max`` of a sum
                        pooling, ``w = hdl.plan.count_bits(out_max)`` (``o_counts`` ->
                        ``i_counts``; a max pooling sends spikes as a LIF array does)
    readout -> output   :func:`hdl.network.result_layout`: ``label``, ``logits``,
                        one beat per sample
    ==================  ============================================================

The stage after a link takes ``in_lanes`` equal to the previous stage's ``lanes``
(:meth:`hdl.mapping.HardwareMapping.layer_in_lanes`), so a beat is never re-cut.
"""

from __future__ import annotations

from amaranth.lib import data, wiring

__all__ = ["beat_count", "element", "flat_index", "connect_streams"]


def beat_count(n, lanes):
    """Beats of a vector of ``n`` elements with ``lanes`` lanes: ``ceil(n / lanes)``."""
    return -(-int(n) // int(lanes))


def element(beat, lane, lanes):
    """The element carried by lane ``lane`` of beat ``beat``: ``beat * lanes + lane``."""
    return int(beat) * int(lanes) + int(lane)


def flat_index(shape, index):
    """Flat (channel-major, C order) index of ``index`` = ``(c, y, x)`` in ``shape`` =
    ``(C, H, W)`` (any rank)."""
    if len(shape) != len(index):
        raise ValueError(f"index {tuple(index)!r} does not match shape {tuple(shape)!r}")
    flat = 0
    for size, i in zip(shape, index):
        if not 0 <= i < size:
            raise ValueError(f"index {tuple(index)!r} is outside shape {tuple(shape)!r}")
        flat = flat * size + int(i)
    return flat


def connect_streams(m, src, dst):
    """Connect stream ``src`` (an output port) to ``dst`` (an input port) in module ``m``:
    directly when the payloads have the same shape, else the ``spikes`` field of a LIF
    array's payload into a spike input."""
    if src.payload.shape() == dst.payload.shape():
        wiring.connect(m, src, dst)
        return
    layout = src.payload.shape()
    if not (isinstance(layout, data.StructLayout) and "spikes" in layout.members):
        raise TypeError(f"cannot connect a stream of {layout!r} to one of "
                        f"{dst.payload.shape()!r}")
    m.d.comb += [dst.valid.eq(src.valid), dst.payload.eq(src.payload.spikes),
                 src.ready.eq(dst.ready)]
