"""The host links: UART frames in, port traffic out, replies back.

The byte protocol (frames, commands, record layouts, error codes) is defined once in
:mod:`hdl.protocol`; :class:`HostLink` implements its device side for one LIF array,
:class:`NetworkLink` for a whole :class:`hdl.network.SpikingNetwork` (CLASSIFY).
"""

from __future__ import annotations

from contextlib import contextmanager

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .protocol import (ERROR_REPLY, FLAG_LOAD_WEIGHTS, NET_STATUS_FIELDS, REPLY_BIT,
                       STATUS_FIELDS, SYNC, TIMEOUT_BYTES, WEIGHT_HEADER_BYTES, Command,
                       ErrorCode, LinkLayout, NetworkLayout, crc16_byte_bits, nbytes)
from golden.core import CoreConfig

from .uart import UARTRx, UARTTx, _check_divisor

__all__ = ["HostLink", "NetworkLink", "array_ports"]


def array_ports(config, lanes):
    """The LIF array's port signature members (:class:`hdl.lif_array.LIFArray`'s), seen
    from the array."""
    P = lanes
    tw = LinkLayout(config, lanes).tw
    lay = LinkLayout(config, lanes)
    output = data.StructLayout({
        "spikes": unsigned(P),
        "membrane": data.ArrayLayout(signed(config.membrane.bits), P),
        "t": unsigned(tw),
        "beat": unsigned(lay.bw),
        "last": unsigned(1),
    })
    members = {
        "i_current": In(stream.Signature(data.ArrayLayout(signed(config.current.bits), P))),
        "o_spikes": Out(stream.Signature(output)),
        "clear": In(1),
        "t": Out(tw),
        "load_threshold": In(stream.Signature(data.StructLayout({
            "index": unsigned(lay.nw), "theta": signed(config.threshold.bits),
            "compare": unsigned(2)}), always_ready=True)),
    }
    if config.affine:
        members["load_affine"] = In(stream.Signature(data.StructLayout({
            "t": unsigned(tw), "channel": unsigned(lay.cw), "a": signed(config.scale.bits),
            "b": signed(config.membrane.bits)}), always_ready=True))
    return members


def _crc_update(crc, byte):
    bits = crc16_byte_bits([crc[i] for i in range(16)], [byte[i] for i in range(8)])
    return Cat(*bits)


def _fits(value, field_bits, bits):
    """Whether the sign-extended ``field_bits``-bit field ``value`` fits ``bits`` bits."""
    if bits >= field_bits:
        return Const(1)
    top = value[bits - 1:field_bits]
    return (top == 0) | (top == (1 << (field_bits - bits + 1)) - 1)


class HostLink(wiring.Component):
    """Device side of the host protocol: drive a LIF array from UART frames.

    Every request is stored whole in a byte buffer (``buffer_bytes`` deep, a block RAM)
    and its CRC, length and (for load commands, in a first pass over the records) its
    values are checked before anything reaches the array, so an erroneous frame changes no
    state. RUN beats are pushed into ``i_current`` while the reply streams out of the UART;
    ``o_spikes`` is back-pressured by the UART, which the stall-all array tolerates.

    The array-facing members mirror :func:`array_ports` (flipped); ``rx``/``tx`` are the
    UART pins (``tx`` registered, idle high).

    Parameters
    ----------
    config : CoreConfig
    lanes : int
    divisor : int
        UART clocks per bit.
    buffer_bytes : int
        Largest request payload.
    readback : bool
        Build RUN_V (membranes in the reply); costs a shift register of one record.
    latency : int
        The array's latency, reported by STATUS.
    timeout_bytes : int
        Byte times of silence that end a half-received frame (protocol default 64;
        simulations use fewer).
    """

    def __init__(self, config, lanes, *, divisor, buffer_bytes=512, readback=True, latency=0,
                 timeout_bytes=TIMEOUT_BYTES):
        if not isinstance(config, CoreConfig):
            raise TypeError(f"config must be a CoreConfig, not {type(config).__name__}")
        self._layout = LinkLayout(config, lanes, buffer_bytes, bool(readback), latency)
        self._divisor = divisor
        if not isinstance(timeout_bytes, int) or timeout_bytes < 2:
            raise ValueError(f"timeout_bytes must be an integer >= 2, not {timeout_bytes!r}")
        self._timeout = timeout_bytes * 10 * divisor
        _check_divisor(divisor)
        members = {"rx": In(1, init=1), "tx": Out(1, init=1)}
        members.update(wiring.Signature(array_ports(config, lanes)).flip().members)
        super().__init__(members)

    @property
    def layout(self):
        return self._layout

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        lay = self._layout
        cfg = lay.config

        m.submodules.rxu = rxu = UARTRx(self._divisor)
        m.submodules.txu = txu = UARTTx(self._divisor)
        m.d.comb += [rxu.rx.eq(self.rx), self.tx.eq(txu.tx), rxu.o.ready.eq(1)]

        m.submodules.buf = buf = Memory(shape=8, depth=lay.buffer_bytes, init=[])
        wr = buf.write_port()
        rd = buf.read_port()

        byte = rxu.o.payload
        got = rxu.o.valid                        # a byte arrives this cycle (always taken)

        # -- request state --------------------------------------------------------------
        cmd = Signal(8)
        length = Signal(16)
        crc = Signal(16, init=0xFFFF)
        crc_rx = Signal(8)
        ptr = Signal(16)                          # buffer address (receive and execute)
        timeout = Signal(range(self._timeout + 1))
        errors = Signal(16)
        dropped = Signal(16)
        last_error = Signal(8)
        err_code = Signal(8)
        validate = Signal()                       # first pass over load records
        bad_value = Signal()

        # Record assembly: byte j of the current record goes to rec[8j:8j+8].
        rec_bytes = max(lay.beat_bytes, lay.threshold_record_bytes, lay.affine_record_bytes)
        rec = Signal(8 * rec_bytes)
        rec_j = Signal(range(rec_bytes + 1))
        rec_len = Signal(range(rec_bytes + 1))    # record size of the current command
        # Reply lengths of RUN and RUN_V, summed per record as it is received (no multiplier).
        reply_len = Signal(16)
        reply_len_v = Signal(16)
        rec_phase = Signal(range(rec_bytes + 1))  # byte position while receiving

        # -- reply framer ---------------------------------------------------------------
        tx_start = Signal()
        tx_busy = Signal()
        tx_cmd = Signal(8)
        tx_len = Signal(16)
        tx_src = Signal(2)                        # 0 none, 1 error, 2 status, 3 run records
        SRC_NONE, SRC_ERROR, SRC_STATUS, SRC_RUN = range(4)
        # init=1 (IDLE zeroes it on the first clock): a mux indexed by tx_cnt whose inputs
        # never change from their initial values is otherwise never evaluated by Icarus.
        tx_cnt = Signal(16, init=1)
        tx_crc = Signal(16, init=0xFFFF)
        tx_err = Signal(8)                        # error code being sent
        tx_err_cmd = Signal(8)

        membrane_mode = Signal()
        out_bytes = [lay.out_record_bytes(False), lay.out_record_bytes(True)]
        orec_bits = 8 * max(out_bytes[1] if lay.readback else 0, out_bytes[0])
        orec = Signal(orec_bits)
        orec_left = Signal(range(max(out_bytes) + 1))

        # -- status bytes ---------------------------------------------------------------
        consts = lay.status_constants()
        status_values = dict(consts, last_error=last_error, t=self.t, errors=errors,
                             dropped=dropped)
        status = []
        for name, fmt in STATUS_FIELDS:
            nb = {"B": 1, "H": 2, "I": 4}[fmt]
            v = status_values[name]
            v = Const(v, 8 * nb) if isinstance(v, int) else v
            for j in range(nb):
                status.append(v.as_unsigned().bit_select(8 * j, 8) if len(v) > 8 * j
                              else Const(0, 8))
        status_arr = Array(status)

        # -- command decoding (at the header) -------------------------------------------
        known = Signal()
        hdr_len_ok = Signal()
        cmd_rec_len = Signal(range(rec_bytes + 1))
        with m.Switch(cmd):
            with m.Case(Command.STATUS, Command.CLEAR):
                m.d.comb += [known.eq(1), hdr_len_ok.eq(length == 0), cmd_rec_len.eq(0)]
            with m.Case(Command.LOAD_THR):
                m.d.comb += [known.eq(1), cmd_rec_len.eq(lay.threshold_record_bytes)]
            with m.Case(Command.LOAD_AFF):
                m.d.comb += [known.eq(cfg.affine), cmd_rec_len.eq(lay.affine_record_bytes)]
            with m.Case(Command.RUN):
                m.d.comb += [known.eq(1), cmd_rec_len.eq(lay.beat_bytes)]
            with m.Case(Command.RUN_V):
                m.d.comb += [known.eq(lay.readback), cmd_rec_len.eq(lay.beat_bytes)]
        with m.If(cmd_rec_len != 0):
            m.d.comb += hdr_len_ok.eq((length != 0) & (length <= lay.buffer_bytes))

        # -- record field views ---------------------------------------------------------
        def fields(spec):
            out, pos = {}, 0
            for name, nb, _signed in spec:
                out[name] = rec[8 * pos:8 * (pos + nb)]
                pos += nb
            return out

        thr = fields(lay.threshold_fields)
        thr_ok = ((thr["index"] < cfg.neurons)
                  & _fits(thr["theta"], len(thr["theta"]), cfg.threshold.bits)
                  & (thr["compare"] < 4))
        m.d.comb += [
            self.load_threshold.payload.index.eq(thr["index"]),
            self.load_threshold.payload.theta.eq(thr["theta"]),
            self.load_threshold.payload.compare.eq(thr["compare"]),
        ]
        aff_ok = Const(1)
        if cfg.affine:
            aff = fields(lay.affine_fields)
            aff_ok = ((aff["t"] < cfg.T) & (aff["channel"] < cfg.channels)
                      & _fits(aff["a"], len(aff["a"]), cfg.scale.bits)
                      & _fits(aff["b"], len(aff["b"]), cfg.membrane.bits))
            m.d.comb += [
                self.load_affine.payload.t.eq(aff["t"]),
                self.load_affine.payload.channel.eq(aff["channel"]),
                self.load_affine.payload.a.eq(aff["a"]),
                self.load_affine.payload.b.eq(aff["b"]),
            ]
        m.d.comb += self.i_current.payload.as_value().eq(rec[:lay.beat_bits])

        in_frame = Signal()                       # timeout counts only inside a frame
        listening = Signal()                      # bytes are consumed, not dropped

        def fail(code):
            m.d.sync += err_code.eq(code)
            m.next = "ERROR"

        m.d.comb += rd.addr.eq(ptr)
        m.d.comb += [wr.addr.eq(ptr), wr.data.eq(byte)]

        hunting = Signal()                        # after an error: silence -> IDLE
        m.d.comb += listening.eq(in_frame)
        with m.If(in_frame | hunting):
            with m.If(got):
                m.d.sync += timeout.eq(0)
            with m.Else():
                m.d.sync += timeout.eq(timeout + 1)
        with m.Else():
            m.d.sync += timeout.eq(0)
        timed_out = timeout == self._timeout

        @contextmanager
        def frame_byte():
            # A state inside a frame: a framing error or silence ends it, else take the byte.
            m.d.comb += in_frame.eq(1)
            with m.If(rxu.framing_error):
                fail(ErrorCode.FRAMING)
            with m.Elif(timed_out):
                fail(ErrorCode.TIMEOUT)
            with m.Elif(got):
                yield

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += listening.eq(1)
                m.d.sync += crc.eq(0xFFFF)
                with m.If(rxu.framing_error):
                    fail(ErrorCode.FRAMING)
                with m.Elif(got):
                    with m.If(byte == SYNC):
                        m.next = "CMD"
                    with m.Else():
                        fail(ErrorCode.FRAMING)
            with m.State("HUNT"):
                m.d.comb += [listening.eq(1), hunting.eq(1)]
                m.d.sync += crc.eq(0xFFFF)
                with m.If(got & (byte == SYNC)):
                    m.next = "CMD"
                with m.Elif(timed_out):
                    m.next = "IDLE"
            with m.State("CMD"), frame_byte():
                m.d.sync += [cmd.eq(byte), crc.eq(_crc_update(crc, byte))]
                m.next = "LEN0"
            with m.State("LEN0"), frame_byte():
                m.d.sync += [length[:8].eq(byte), crc.eq(_crc_update(crc, byte))]
                m.next = "LEN1"
            with m.State("LEN1"), frame_byte():
                m.d.sync += [length[8:].eq(byte), crc.eq(_crc_update(crc, byte))]
                m.next = "CHECK_HDR"
            with m.State("CHECK_HDR"):
                m.d.comb += in_frame.eq(1)
                m.d.sync += [ptr.eq(0), rec_phase.eq(0), reply_len.eq(0), reply_len_v.eq(0),
                             rec_len.eq(cmd_rec_len)]
                with m.If(~known):
                    fail(ErrorCode.UNKNOWN_COMMAND)
                with m.Elif(~hdr_len_ok):
                    fail(ErrorCode.BAD_LENGTH)
                with m.Elif(length == 0):
                    m.next = "CRC0"
                with m.Else():
                    m.next = "PAYLOAD"
            with m.State("PAYLOAD"), frame_byte():
                m.d.comb += wr.en.eq(1)
                m.d.sync += [crc.eq(_crc_update(crc, byte)), ptr.eq(ptr + 1)]
                with m.If(rec_phase == rec_len - 1):
                    m.d.sync += [rec_phase.eq(0), reply_len.eq(reply_len + out_bytes[0]),
                                 reply_len_v.eq(reply_len_v + out_bytes[1])]
                with m.Else():
                    m.d.sync += rec_phase.eq(rec_phase + 1)
                with m.If(ptr == length - 1):
                    m.next = "CRC0"
            with m.State("CRC0"), frame_byte():
                m.d.sync += crc_rx.eq(byte)
                m.next = "CRC1"
            with m.State("CRC1"), frame_byte():
                with m.If(Cat(crc_rx, byte) != crc):
                    fail(ErrorCode.BAD_CHECKSUM)
                with m.Elif(rec_phase != 0):
                    fail(ErrorCode.BAD_LENGTH)
                with m.Else():
                    m.next = "EXEC"
            with m.State("EXEC"):
                m.d.sync += [ptr.eq(0), rec_j.eq(0), validate.eq(1), bad_value.eq(0),
                             membrane_mode.eq(cmd == Command.RUN_V), tx_cmd.eq(cmd | REPLY_BIT)]
                with m.Switch(cmd):
                    with m.Case(Command.STATUS):
                        m.d.sync += [tx_len.eq(len(status)), tx_src.eq(SRC_STATUS)]
                        m.next = "REPLY"
                    with m.Case(Command.CLEAR):
                        m.d.comb += self.clear.eq(1)
                        m.d.sync += [tx_len.eq(0), tx_src.eq(SRC_NONE)]
                        m.next = "REPLY"
                    with m.Case(Command.LOAD_THR, Command.LOAD_AFF):
                        m.d.sync += [tx_len.eq(0), tx_src.eq(SRC_NONE)]
                        m.next = "REC_ADDR"
                    with m.Case(Command.RUN, Command.RUN_V):
                        m.d.sync += [validate.eq(0), tx_src.eq(SRC_RUN)]
                        with m.If(cmd == Command.RUN_V):
                            m.d.sync += tx_len.eq(reply_len_v)
                        with m.Else():
                            m.d.sync += tx_len.eq(reply_len)
                        m.next = "RUN_START"
            with m.State("RUN_START"):
                m.d.comb += tx_start.eq(1)
                m.next = "REC_ADDR"
            with m.State("REC_ADDR"):
                # The read port shows buf[ptr] one cycle after the address.
                m.next = "REC_DATA"
            with m.State("REC_DATA"):
                m.d.sync += [rec.word_select(rec_j, 8).eq(rd.data), ptr.eq(ptr + 1)]
                with m.If(rec_j == rec_len - 1):
                    m.d.sync += rec_j.eq(0)
                    m.next = "REC_ACT"
                with m.Else():
                    m.d.sync += rec_j.eq(rec_j + 1)
                    m.next = "REC_ADDR"
            with m.State("REC_ACT"):
                done = ptr == length
                with m.Switch(cmd):
                    with m.Case(Command.LOAD_THR, Command.LOAD_AFF):
                        ok = Signal()
                        m.d.comb += ok.eq(Mux(cmd == Command.LOAD_THR, thr_ok, aff_ok))
                        with m.If(validate):
                            with m.If(~ok):
                                m.d.sync += bad_value.eq(1)
                        with m.Elif(cmd == Command.LOAD_THR):
                            m.d.comb += self.load_threshold.valid.eq(1)
                        if cfg.affine:
                            with m.If(~validate & (cmd == Command.LOAD_AFF)):
                                m.d.comb += self.load_affine.valid.eq(1)
                        with m.If(~done):
                            m.next = "REC_ADDR"
                        with m.Elif(validate):
                            m.next = "VALIDATED"
                        with m.Else():
                            m.next = "REPLY"
                    with m.Default():                # RUN, RUN_V: one beat
                        m.d.comb += self.i_current.valid.eq(1)
                        with m.If(self.i_current.ready):
                            with m.If(done):
                                m.next = "WAIT_TX"
                            with m.Else():
                                m.next = "REC_ADDR"
            with m.State("VALIDATED"):
                m.d.sync += [ptr.eq(0), validate.eq(0)]
                with m.If(bad_value):
                    fail(ErrorCode.BAD_VALUE)
                with m.Else():
                    m.next = "REC_ADDR"
            with m.State("REPLY"):
                m.d.comb += tx_start.eq(1)
                m.next = "WAIT_TX"
            with m.State("WAIT_TX"):
                with m.If(~tx_busy & ~tx_start):
                    m.next = "IDLE"
            with m.State("ERROR"):
                m.d.sync += [tx_cmd.eq(ERROR_REPLY), tx_len.eq(2), tx_src.eq(SRC_ERROR),
                             tx_err.eq(err_code), tx_err_cmd.eq(cmd), last_error.eq(err_code)]
                with m.If(errors != 0xFFFF):
                    m.d.sync += errors.eq(errors + 1)
                m.next = "ERROR_SEND"
            with m.State("ERROR_SEND"):
                m.d.comb += tx_start.eq(1)
                m.next = "ERROR_WAIT"
            with m.State("ERROR_WAIT"):
                with m.If(~tx_busy):
                    m.next = "HUNT"

        # Bytes that arrive while a request executes or a reply goes out are dropped.
        with m.If(got & ~listening & (dropped != 0xFFFF)):
            m.d.sync += dropped.eq(dropped + 1)

        # -- output records (RUN) -------------------------------------------------------
        out = self.o_spikes.payload
        recs = []
        for membrane in (False, True):
            if membrane and not lay.readback:
                recs.append(None)
                continue
            parts = []
            for name, nb, count, is_signed in lay.out_fields(membrane):
                for j in range(count):
                    if name == "spikes":
                        src = out.spikes
                    elif name == "membrane":
                        src = out.membrane[j]
                    else:
                        src = getattr(out, name)
                    part = Signal(signed(8 * nb) if is_signed else unsigned(8 * nb))
                    m.d.comb += part.eq(src)
                    parts.append(part)
            recs.append(Cat(*parts))
        m.d.comb += self.o_spikes.ready.eq(orec_left == 0)
        with m.If(self.o_spikes.valid & (orec_left == 0)):
            if lay.readback:
                with m.If(membrane_mode):
                    m.d.sync += [orec.eq(recs[1]), orec_left.eq(out_bytes[1])]
                with m.Else():
                    m.d.sync += [orec.eq(recs[0]), orec_left.eq(out_bytes[0])]
            else:
                m.d.sync += [orec.eq(recs[0]), orec_left.eq(out_bytes[0])]

        # -- reply framer ---------------------------------------------------------------
        _reply_framer(m, txu, tx_start=tx_start, tx_busy=tx_busy, tx_crc=tx_crc,
                      tx_cnt=tx_cnt, tx_cmd=tx_cmd, tx_len=tx_len, tx_src=tx_src,
                      tx_err=tx_err, tx_err_cmd=tx_err_cmd, status_arr=status_arr,
                      orec=orec, orec_left=orec_left, src_error=SRC_ERROR,
                      src_status=SRC_STATUS, src_record=SRC_RUN)

        return m


def _reply_framer(m, txu, *, tx_start, tx_busy, tx_crc, tx_cnt, tx_cmd, tx_len, tx_src, tx_err,
                  tx_err_cmd, status_arr, orec, orec_left, src_error, src_status, src_record):
    """The reply framer both links share: on ``tx_start`` send SYNC, CMD, LEN (little
    endian), ``tx_len`` payload bytes from ``tx_src`` (the error code and command, the
    status bytes, or the record register ``orec`` byte by byte while ``orec_left``) and the
    CRC-16 of CMD..payload; ``tx_busy`` until the last byte is taken."""
    tx_byte = Signal(8)
    tx_valid = Signal()
    m.d.comb += [txu.i.payload.eq(tx_byte), txu.i.valid.eq(tx_valid)]
    sent = tx_valid & txu.i.ready
    with m.FSM():
        with m.State("IDLE"):
            m.d.sync += [tx_crc.eq(0xFFFF), tx_cnt.eq(0)]
            with m.If(tx_start):
                m.d.sync += tx_busy.eq(1)
                m.next = "SYNC"
        with m.State("SYNC"):
            m.d.comb += [tx_byte.eq(SYNC), tx_valid.eq(1)]
            with m.If(sent):
                m.next = "CMD"
        for state, value, nxt in (("CMD", tx_cmd, "LEN0"), ("LEN0", tx_len[:8], "LEN1"),
                                  ("LEN1", tx_len[8:], "PAYLOAD")):
            with m.State(state):
                m.d.comb += [tx_byte.eq(value), tx_valid.eq(1)]
                with m.If(sent):
                    m.d.sync += tx_crc.eq(_crc_update(tx_crc, value))
                    if nxt == "PAYLOAD":
                        with m.If(tx_len == 0):
                            m.next = "CRC0"
                        with m.Else():
                            m.next = "PAYLOAD"
                    else:
                        m.next = nxt
        with m.State("PAYLOAD"):
            with m.Switch(tx_src):
                with m.Case(src_error):
                    m.d.comb += [tx_byte.eq(Mux(tx_cnt == 0, tx_err, tx_err_cmd)),
                                 tx_valid.eq(1)]
                with m.Case(src_status):
                    m.d.comb += [tx_byte.eq(status_arr[tx_cnt[:5]]), tx_valid.eq(1)]
                with m.Case(src_record):
                    m.d.comb += [tx_byte.eq(orec[:8]), tx_valid.eq(orec_left != 0)]
                    with m.If(sent):
                        m.d.sync += [orec.eq(orec >> 8), orec_left.eq(orec_left - 1)]
            with m.If(sent):
                m.d.sync += [tx_crc.eq(_crc_update(tx_crc, tx_byte)), tx_cnt.eq(tx_cnt + 1)]
                with m.If(tx_cnt == tx_len - 1):
                    m.next = "CRC0"
        with m.State("CRC0"):
            m.d.comb += [tx_byte.eq(tx_crc[:8]), tx_valid.eq(1)]
            with m.If(sent):
                m.next = "CRC1"
        with m.State("CRC1"):
            m.d.comb += [tx_byte.eq(tx_crc[8:]), tx_valid.eq(1)]
            with m.If(sent):
                m.d.sync += tx_busy.eq(0)
                m.next = "IDLE"


def _status_bytes(fields, values):
    """The bytes of a status reply: constants and signals, little-endian per field."""
    out = []
    for name, fmt in fields:
        nb = {"B": 1, "H": 2, "I": 4}[fmt]
        v = values[name]
        v = Const(v, 8 * nb) if isinstance(v, int) else v
        for j in range(nb):
            out.append(v.as_unsigned().bit_select(8 * j, 8) if len(v) > 8 * j
                       else Const(0, 8))
    return out


class NetworkLink(wiring.Component):
    """Device side of the network commands: classify images from UART frames.

    A CLASSIFY request is stored whole in a byte buffer (``buffer_bytes`` deep, a block
    RAM); its CRC, its size (a whole number of images) and every pixel (inside the input
    format) are checked before the first pixel beat leaves on ``i_pixels``, so an
    erroneous frame changes no state (no pixel is fed, no sample is counted). The images
    are then classified one after the other: the pixels of one image are read from the
    buffer and offered on ``i_pixels`` (``in_lanes`` pixels a beat, pixel ``b * in_lanes
    + q`` in lane ``q``, zeros past ``n_in``), then the link waits for its ``o_result``
    and turns it into one reply record while the next image is fed. The reply header goes
    out when execution starts; each record streams out of the UART as it is made.

    Spike counters (``counts``): ``tap<l>`` carries the spike bits of the real neurons of
    LIF layer ``l``'s beat (``valid`` when the beat is transferred); the counters are
    cleared when an image starts and read when its result arrives. One image is in the
    network at a time, so the counts are exactly that image's.

    Weight loading (``weights``): a LOAD_WEIGHTS request is stored and checked like a
    CLASSIFY (CRC, the layer, a whole number of its words, the address range, no bits above
    the word width) and then written word by word on ``load_weights`` (registered; one
    write per buffer word read, ``en`` high for one cycle) while the network is idle; the
    reply carries the layer and the address after the last word.

    ``rx``/``tx`` are the UART pins (``tx`` registered, idle high).

    Parameters
    ----------
    layout : NetworkLayout
    in_lanes : int
        Pixels per ``i_pixels`` beat (the network's input lanes).
    tap_lanes : sequence of int
        Lanes of each LIF layer (one ``tap<l>`` each, only with ``layout.counts``).
    divisor : int
        UART clocks per bit.
    timeout_bytes : int
        Byte times of silence that end a half-received frame.
    weights : sequence of (layer, words, width)
        The loadable weight memories (:attr:`hdl.network.SpikingNetwork.weight_memories`):
        LOAD_WEIGHTS and a ``load_weights`` port
        (:func:`hdl.network.weight_write_signature`) only when not empty.
    """

    def __init__(self, layout, in_lanes, tap_lanes=(), *, divisor, timeout_bytes=TIMEOUT_BYTES,
                 weights=()):
        from .network import result_layout
        if not isinstance(layout, NetworkLayout):
            raise TypeError(f"layout must be a NetworkLayout, not {type(layout).__name__}")
        if not isinstance(in_lanes, int) or in_lanes < 1:
            raise ValueError(f"in_lanes must be a positive integer, not {in_lanes!r}")
        tap_lanes = tuple(tap_lanes)
        if layout.counts and len(tap_lanes) != len(layout.layer_neurons):
            raise ValueError(f"tap_lanes has {len(tap_lanes)} layers, the layout "
                             f"{len(layout.layer_neurons)}")
        if not isinstance(timeout_bytes, int) or timeout_bytes < 2:
            raise ValueError(f"timeout_bytes must be an integer >= 2, not {timeout_bytes!r}")
        _check_divisor(divisor)
        weights = tuple((int(l), int(n), int(w)) for l, n, w in weights)
        for l, n, w in weights:
            if not 0 <= l <= 255 or not 1 <= n <= 1 << 24 or w < 1:
                raise ValueError(f"weight memory (layer {l}, {n} words of {w} bits) is out of "
                                 f"range: layer 0..255, 1..2**24 words")
            if WEIGHT_HEADER_BYTES + nbytes(w) > layout.buffer_bytes:
                raise ValueError(f"buffer_bytes = {layout.buffer_bytes} cannot hold one "
                                 f"LOAD_WEIGHTS word of layer {l} ({nbytes(w)} bytes)")
        if len({l for l, _, _ in weights}) != len(weights):
            raise ValueError(f"weights names a layer twice: {weights}")
        self._weights = weights
        self._layout, self._divisor = layout, divisor
        self._in_lanes, self._tap_lanes = in_lanes, tap_lanes
        self._timeout = timeout_bytes * 10 * divisor
        members = {
            "rx": In(1, init=1), "tx": Out(1, init=1),
            "i_pixels": Out(stream.Signature(data.ArrayLayout(signed(layout.input_bits),
                                                              in_lanes))),
            "o_result": In(stream.Signature(result_layout(layout.classes, layout.logit_bits))),
        }
        if layout.counts:
            for l, P in enumerate(tap_lanes):
                members[f"tap{l}"] = In(stream.Signature(unsigned(P), always_ready=True))
        if weights:
            from .network import weight_write_signature
            members["load_weights"] = Out(weight_write_signature(weights))
        super().__init__(members)

    @property
    def layout(self):
        return self._layout

    @property
    def divisor(self):
        return self._divisor

    @property
    def weights(self):
        """The loadable weight memories, ``(layer, words, width)``."""
        return self._weights

    def elaborate(self, platform):
        m = Module()
        lay = self._layout
        Q, Bx, n_in = self._in_lanes, lay.input_bits, lay.inputs
        nb = lay.pixel_bytes

        m.submodules.rxu = rxu = UARTRx(self._divisor)
        m.submodules.txu = txu = UARTTx(self._divisor)
        m.d.comb += [rxu.rx.eq(self.rx), self.tx.eq(txu.tx), rxu.o.ready.eq(1)]

        m.submodules.buf = buf = Memory(shape=8, depth=lay.buffer_bytes, init=[])
        wr = buf.write_port()
        rd = buf.read_port()
        byte = rxu.o.payload
        got = rxu.o.valid

        # -- request state --------------------------------------------------------------
        cmd = Signal(8)
        length = Signal(16)
        crc = Signal(16, init=0xFFFF)
        crc_rx = Signal(8)
        ptr = Signal(16)
        timeout = Signal(range(self._timeout + 1))
        errors = Signal(16)
        dropped = Signal(16)
        last_error = Signal(8)
        err_code = Signal(8)
        samples = Signal(16)
        img_phase = Signal(range(lay.image_bytes + 1))     # byte of the image while receiving
        pix_phase = Signal(range(nb + 1))                  # byte of the pixel while receiving
        px_ones = Signal()
        px_zeros = Signal()
        bad_value = Signal()
        rb = [lay.record_bytes(False), lay.record_bytes(lay.counts)]
        reply_len = Signal(16)
        reply_len_c = Signal(16)
        counts_mode = Signal()

        # -- reply framer state ---------------------------------------------------------
        tx_start = Signal()
        tx_busy = Signal()
        tx_cmd = Signal(8)
        tx_len = Signal(16)
        tx_src = Signal(2)
        SRC_NONE, SRC_ERROR, SRC_STATUS, SRC_RESULT = range(4)
        tx_cnt = Signal(16, init=1)           # init=1: see HostLink (Icarus and a const mux)
        tx_crc = Signal(16, init=0xFFFF)
        tx_err = Signal(8)
        tx_err_cmd = Signal(8)
        orec = Signal(8 * max(rb))
        orec_left = Signal(range(max(rb) + 1))

        status = _status_bytes(NET_STATUS_FIELDS, dict(
            lay.status_constants(), last_error=last_error, errors=errors, dropped=dropped,
            samples=samples,
            flags=lay.flags | (FLAG_LOAD_WEIGHTS if self._weights else 0)))
        status_arr = Array(status)

        # -- spike counters -------------------------------------------------------------
        count_clear = Signal()
        counters = []
        if lay.counts:
            for l in range(len(self._tap_lanes)):
                tap = getattr(self, f"tap{l}")
                cnt = Signal(lay.count_bits, name=f"count{l}")
                pop = sum(tap.payload[i] for i in range(len(tap.payload)))
                with m.If(count_clear):
                    m.d.sync += cnt.eq(0)
                with m.Elif(tap.valid):
                    m.d.sync += cnt.eq(cnt + pop)
                counters.append(cnt)

        # -- command decoding (at the header) -------------------------------------------
        known = Signal()
        hdr_len_ok = Signal()
        with m.Switch(cmd):
            with m.Case(Command.NET_STATUS):
                m.d.comb += [known.eq(1), hdr_len_ok.eq(length == 0)]
            with m.Case(Command.CLASSIFY):
                m.d.comb += [known.eq(1),
                             hdr_len_ok.eq((length != 0) & (length <= lay.buffer_bytes))]
            with m.Case(Command.CLASSIFY_COUNTS):
                m.d.comb += [known.eq(lay.counts),
                             hdr_len_ok.eq((length != 0) & (length <= lay.buffer_bytes))]
            with m.Case(Command.LOAD_WEIGHTS):
                m.d.comb += [known.eq(bool(self._weights)),
                             hdr_len_ok.eq((length > WEIGHT_HEADER_BYTES)
                                           & (length <= lay.buffer_bytes))]

        in_frame = Signal()
        listening = Signal()
        hunting = Signal()

        def fail(code):
            m.d.sync += err_code.eq(code)
            m.next = "ERROR"

        m.d.comb += [rd.addr.eq(ptr), wr.addr.eq(ptr), wr.data.eq(byte)]
        m.d.comb += listening.eq(in_frame)
        with m.If(in_frame | hunting):
            with m.If(got):
                m.d.sync += timeout.eq(0)
            with m.Else():
                m.d.sync += timeout.eq(timeout + 1)
        with m.Else():
            m.d.sync += timeout.eq(0)
        timed_out = timeout == self._timeout

        @contextmanager
        def frame_byte():
            m.d.comb += in_frame.eq(1)
            with m.If(rxu.framing_error):
                fail(ErrorCode.FRAMING)
            with m.Elif(timed_out):
                fail(ErrorCode.TIMEOUT)
            with m.Elif(got):
                yield

        # Pixel range check while receiving: the bits of a pixel's field at and above the
        # format's sign bit (Bx - 1) must all be equal (a sign extension).
        def check_pixel_byte():
            if 8 * nb == Bx:
                return                                   # every field value is in range
            ones, zeros = Signal(), Signal()
            with m.Switch(pix_phase):
                for j in range(nb):
                    mask = sum(1 << i for i in range(8) if 8 * j + i >= Bx - 1)
                    with m.Case(j):
                        m.d.comb += [ones.eq((byte & mask) != 0),
                                     zeros.eq((~byte & mask) != 0)]
            with m.If(pix_phase == nb - 1):
                m.d.sync += [px_ones.eq(0), px_zeros.eq(0)]
                with m.If((px_ones | ones) & (px_zeros | zeros)):
                    m.d.sync += bad_value.eq(1)
            with m.Else():
                m.d.sync += [px_ones.eq(px_ones | ones), px_zeros.eq(px_zeros | zeros)]

        # -- LOAD_WEIGHTS: the layer's constants, tracked while receiving ----------------
        wts = self._weights or ((0, 1, 1),)
        wnb_max = max(nbytes(w) for _, _, w in wts)
        wl_layer = Signal(8)
        wl_addr = Signal(24)
        wl_phase = Signal(range(max(2, wnb_max)))          # byte of the word
        wl_count = Signal(range(lay.buffer_bytes + 1))     # whole words received
        wl_bad = Signal()                                  # a bit above the word width
        wl_known = Signal()
        wl_nb = Signal(range(wnb_max + 1))
        wl_words = Signal(range((1 << 24) + 1))
        wl_top = Signal(8)                                 # bits allowed in the last byte
        for l, n, w in wts:
            with m.If(wl_layer == l):
                top = (1 << (w - 8 * (nbytes(w) - 1))) - 1
                m.d.comb += [wl_known.eq(bool(self._weights)), wl_nb.eq(nbytes(w)),
                             wl_words.eq(n), wl_top.eq(top)]

        def track_weight_byte():
            with m.If(ptr == 0):
                m.d.sync += wl_layer.eq(byte)
            for j in range(3):
                with m.If(ptr == 1 + j):
                    m.d.sync += wl_addr.word_select(j, 8).eq(byte)
            with m.If(ptr == WEIGHT_HEADER_BYTES - 1):
                m.d.sync += [wl_phase.eq(0), wl_count.eq(0), wl_bad.eq(0)]
            with m.If(ptr >= WEIGHT_HEADER_BYTES):
                with m.If(wl_phase == wl_nb - 1):
                    m.d.sync += [wl_phase.eq(0), wl_count.eq(wl_count + 1)]
                    with m.If((byte & ~wl_top) != 0):
                        m.d.sync += wl_bad.eq(1)
                with m.Else():
                    m.d.sync += wl_phase.eq(wl_phase + 1)

        # -- execution state ------------------------------------------------------------
        wword = Signal(8 * wnb_max)
        wj = Signal(range(max(2, wnb_max)))
        if self._weights:
            lw = self.load_weights
            m.d.sync += lw.en.eq(0)
        pix = Signal(8 * nb)
        pix_j = Signal(range(nb + 1))
        pix_n = Signal(range(n_in + 1))                  # pixels of the image done
        lane = Signal(range(Q + 1))
        beat = Signal(data.ArrayLayout(signed(Bx), Q))
        m.d.comb += self.i_pixels.payload.eq(beat)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += listening.eq(1)
                m.d.sync += crc.eq(0xFFFF)
                with m.If(rxu.framing_error):
                    fail(ErrorCode.FRAMING)
                with m.Elif(got):
                    with m.If(byte == SYNC):
                        m.next = "CMD"
                    with m.Else():
                        fail(ErrorCode.FRAMING)
            with m.State("HUNT"):
                m.d.comb += [listening.eq(1), hunting.eq(1)]
                m.d.sync += crc.eq(0xFFFF)
                with m.If(got & (byte == SYNC)):
                    m.next = "CMD"
                with m.Elif(timed_out):
                    m.next = "IDLE"
            with m.State("CMD"), frame_byte():
                m.d.sync += [cmd.eq(byte), crc.eq(_crc_update(crc, byte))]
                m.next = "LEN0"
            with m.State("LEN0"), frame_byte():
                m.d.sync += [length[:8].eq(byte), crc.eq(_crc_update(crc, byte))]
                m.next = "LEN1"
            with m.State("LEN1"), frame_byte():
                m.d.sync += [length[8:].eq(byte), crc.eq(_crc_update(crc, byte))]
                m.next = "CHECK_HDR"
            with m.State("CHECK_HDR"):
                m.d.comb += in_frame.eq(1)
                m.d.sync += [ptr.eq(0), img_phase.eq(0), pix_phase.eq(0), px_ones.eq(0),
                             px_zeros.eq(0), bad_value.eq(0), reply_len.eq(0),
                             reply_len_c.eq(0)]
                with m.If(~known):
                    fail(ErrorCode.UNKNOWN_COMMAND)
                with m.Elif(~hdr_len_ok):
                    fail(ErrorCode.BAD_LENGTH)
                with m.Elif(length == 0):
                    m.next = "CRC0"
                with m.Else():
                    m.next = "PAYLOAD"
            with m.State("PAYLOAD"), frame_byte():
                m.d.comb += wr.en.eq(1)
                m.d.sync += [crc.eq(_crc_update(crc, byte)), ptr.eq(ptr + 1)]
                check_pixel_byte()
                if self._weights:
                    track_weight_byte()
                with m.If(pix_phase == nb - 1):
                    m.d.sync += pix_phase.eq(0)
                with m.Else():
                    m.d.sync += pix_phase.eq(pix_phase + 1)
                with m.If(img_phase == lay.image_bytes - 1):
                    m.d.sync += [img_phase.eq(0), reply_len.eq(reply_len + rb[0]),
                                 reply_len_c.eq(reply_len_c + rb[1])]
                with m.Else():
                    m.d.sync += img_phase.eq(img_phase + 1)
                with m.If(ptr == length - 1):
                    m.next = "CRC0"
            with m.State("CRC0"), frame_byte():
                m.d.sync += crc_rx.eq(byte)
                m.next = "CRC1"
            with m.State("CRC1"), frame_byte():
                loading = cmd == Command.LOAD_WEIGHTS
                with m.If(Cat(crc_rx, byte) != crc):
                    fail(ErrorCode.BAD_CHECKSUM)
                with m.Elif(loading & ~wl_known):
                    fail(ErrorCode.BAD_LAYER)
                with m.Elif(loading & (wl_phase != 0)):
                    fail(ErrorCode.BAD_LENGTH)
                with m.Elif(loading & (wl_addr + wl_count > wl_words)):
                    fail(ErrorCode.BAD_ADDRESS)
                with m.Elif(loading & wl_bad):
                    fail(ErrorCode.BAD_VALUE)
                with m.Elif(loading):
                    m.next = "EXEC"
                with m.Elif(img_phase != 0):
                    fail(ErrorCode.IMAGE_SIZE)
                with m.Elif(bad_value):
                    fail(ErrorCode.BAD_VALUE)
                with m.Else():
                    m.next = "EXEC"
            # Only the states below act (feed pixels, count samples); they are reached
            # through CRC1 only, after every check of the frame has passed.
            with m.State("EXEC"):
                m.d.sync += [ptr.eq(0), tx_cmd.eq(cmd | REPLY_BIT),
                             counts_mode.eq(cmd == Command.CLASSIFY_COUNTS)]
                with m.If(cmd == Command.NET_STATUS):
                    m.d.sync += [tx_len.eq(len(status)), tx_src.eq(SRC_STATUS)]
                    m.next = "REPLY"
                with m.Elif(cmd == Command.LOAD_WEIGHTS):
                    m.d.sync += [ptr.eq(WEIGHT_HEADER_BYTES), tx_src.eq(SRC_RESULT),
                                 tx_len.eq(WEIGHT_HEADER_BYTES)]
                    m.next = "LW_WORD"
                with m.Else():
                    m.d.sync += [tx_src.eq(SRC_RESULT),
                                 tx_len.eq(Mux(cmd == Command.CLASSIFY_COUNTS, reply_len_c,
                                               reply_len))]
                    m.next = "CL_START"
            with m.State("CL_START"):
                m.d.comb += tx_start.eq(1)
                m.next = "IMG_START"
            with m.State("IMG_START"):
                m.d.comb += count_clear.eq(1)
                m.d.sync += [pix_n.eq(0), lane.eq(0), pix_j.eq(0), beat.eq(0)]
                m.next = "RD_ADDR"
            with m.State("RD_ADDR"):
                m.next = "RD_DATA"                    # buf[ptr] shows one cycle later
            with m.State("RD_DATA"):
                m.d.sync += [pix.word_select(pix_j, 8).eq(rd.data), ptr.eq(ptr + 1)]
                with m.If(pix_j == nb - 1):
                    m.d.sync += pix_j.eq(0)
                    m.next = "PIX_PUT"
                with m.Else():
                    m.d.sync += pix_j.eq(pix_j + 1)
                    m.next = "RD_ADDR"
            with m.State("PIX_PUT"):
                m.d.sync += [beat[lane].eq(pix[:Bx]), pix_n.eq(pix_n + 1)]
                with m.If((lane == Q - 1) | (pix_n == n_in - 1)):
                    m.d.sync += lane.eq(0)
                    m.next = "BEAT_SEND"
                with m.Else():
                    m.d.sync += lane.eq(lane + 1)
                    m.next = "RD_ADDR"
            with m.State("BEAT_SEND"):
                m.d.comb += self.i_pixels.valid.eq(1)
                with m.If(self.i_pixels.ready):
                    m.d.sync += beat.eq(0)
                    with m.If(pix_n == n_in):
                        m.next = "WAIT_RESULT"
                    with m.Else():
                        m.next = "RD_ADDR"
            with m.State("WAIT_RESULT"):
                res = self.o_result.payload
                m.d.comb += self.o_result.ready.eq(orec_left == 0)
                with m.If(self.o_result.valid & (orec_left == 0)):
                    parts = [samples]
                    for name, fnb, count, is_signed in lay.record_fields(lay.counts):
                        for j in range(count):
                            src = {"sample": None, "label": res.label,
                                   "logits": res.logits[j] if name == "logits" else None,
                                   "counts": counters[j] if name == "counts" else None}[name]
                            if src is None:
                                continue
                            part = Signal(signed(8 * fnb) if is_signed else unsigned(8 * fnb))
                            m.d.comb += part.eq(src)
                            parts.append(part)
                    m.d.sync += [orec.eq(Cat(*parts)), samples.eq(samples + 1),
                                 orec_left.eq(Mux(counts_mode, rb[1], rb[0]))]
                    with m.If(ptr == length):
                        m.next = "WAIT_TX"
                    with m.Else():
                        m.next = "IMG_START"
            # LOAD_WEIGHTS: assemble each word from the buffer, write it, then reply with
            # the layer and the next address (through the record register).
            with m.State("LW_WORD"):
                m.d.sync += [wword.eq(0), wj.eq(0)]
                m.next = "LW_RD_ADDR"
            with m.State("LW_RD_ADDR"):
                m.next = "LW_RD_DATA"                 # buf[ptr] shows one cycle later
            with m.State("LW_RD_DATA"):
                m.d.sync += [wword.word_select(wj, 8).eq(rd.data), ptr.eq(ptr + 1)]
                with m.If(wj == wl_nb - 1):
                    m.next = "LW_WRITE"
                with m.Else():
                    m.d.sync += wj.eq(wj + 1)
                    m.next = "LW_RD_ADDR"
            with m.State("LW_WRITE"):
                if self._weights:
                    m.d.sync += [lw.en.eq(1), lw.layer.eq(wl_layer), lw.addr.eq(wl_addr),
                                 lw.data.eq(wword)]
                m.d.sync += wl_addr.eq(wl_addr + 1)
                with m.If(ptr == length):
                    m.next = "LW_REPLY"
                with m.Else():
                    m.next = "LW_WORD"
            with m.State("LW_REPLY"):
                m.d.sync += [orec.eq(Cat(wl_layer, wl_addr)),
                             orec_left.eq(WEIGHT_HEADER_BYTES)]
                m.next = "REPLY"
            with m.State("REPLY"):
                m.d.comb += tx_start.eq(1)
                m.next = "WAIT_TX"
            with m.State("WAIT_TX"):
                with m.If(~tx_busy & ~tx_start):
                    m.next = "IDLE"
            with m.State("ERROR"):
                m.d.sync += [tx_cmd.eq(ERROR_REPLY), tx_len.eq(2), tx_src.eq(SRC_ERROR),
                             tx_err.eq(err_code), tx_err_cmd.eq(cmd), last_error.eq(err_code)]
                with m.If(errors != 0xFFFF):
                    m.d.sync += errors.eq(errors + 1)
                m.next = "ERROR_SEND"
            with m.State("ERROR_SEND"):
                m.d.comb += tx_start.eq(1)
                m.next = "ERROR_WAIT"
            with m.State("ERROR_WAIT"):
                with m.If(~tx_busy):
                    m.next = "HUNT"

        with m.If(got & ~listening & (dropped != 0xFFFF)):
            m.d.sync += dropped.eq(dropped + 1)

        # -- reply framer ---------------------------------------------------------------
        _reply_framer(m, txu, tx_start=tx_start, tx_busy=tx_busy, tx_crc=tx_crc,
                      tx_cnt=tx_cnt, tx_cmd=tx_cmd, tx_len=tx_len, tx_src=tx_src,
                      tx_err=tx_err, tx_err_cmd=tx_err_cmd, status_arr=status_arr,
                      orec=orec, orec_left=orec_left, src_error=SRC_ERROR,
                      src_status=SRC_STATUS, src_record=SRC_RESULT)
        return m
