"""cocotb test of the network top with its weights in SPRAM, loaded over the UART.

The top (``tests/test_boards_weight_load.py``) is exported for an iCE40 UltraPlus, so
the dense weight memories that opted in are ``SB_SPRAM256KA`` instances, simulated with
Yosys's model: their words start undefined (``x``), as SPRAM after configuration. The
testbench loads the weights with the host driver's LOAD_WEIGHTS requests
(:func:`boards.host.op_load_weights`) and then classifies; results must equal golden's
IntegerNetwork. The plan (:data:`boards.cocotb_board.PLAN_ENV`) is the network top's, plus
``lanes`` and ``in_lanes`` (the mapping) and ``skip`` (``[layer, address]`` of one word
not to load: a deliberate fault).
"""

from __future__ import annotations

import cocotb

from boards.cocotb_board import TB, compare_results, load_plan
from boards.host import op_classify, op_load_weights, op_net_status, weight_loads
from hdl.mapping import HardwareMapping
from hdl.protocol import FLAG_LOAD_WEIGHTS, Command, ErrorCode, NetworkLayout, encode_frame


@cocotb.test()
async def load_weights_then_classify(dut):
    """NET_STATUS offers LOAD_WEIGHTS; every weight word is written; CLASSIFY and
    CLASSIFY_COUNTS equal golden; bad LOAD_WEIGHTS frames get their error and write
    nothing (classifying again still equals golden)."""
    plan = load_plan()
    inet, x = plan["inet"], plan["x"]
    mapping = HardwareMapping.for_network(inet, plan["lanes"], in_lanes=plan["in_lanes"])
    lay = NetworkLayout.for_network(inet, buffer_bytes=plan["buffer_bytes"])
    tb = TB(dut, plan)
    await tb.start()
    st = await tb.do(op_net_status())
    assert st["flags"] & FLAG_LOAD_WEIGHTS, f"NET_STATUS flags = {st['flags']}"

    loads = weight_loads(inet, mapping)
    rows = loads
    if plan.get("skip"):
        layer, addr = plan["skip"]
        rows = []
        for l, words, w in loads:
            rows += [(l, words[:addr], w, 0), (l, words[addr + 1:], w, addr + 1)] \
                if l == layer else [(l, words, w)]
    written = await tb.do(op_load_weights(rows, lay.buffer_bytes))
    dut._log.info("wrote %d weight words in %d layers", written, len(loads))

    x_q, _ = inet.quantize_input(x)
    n = plan["batch"]
    got = await tb.do(op_classify(lay, x_q[:n], False, 0))
    compare_results("CLASSIFY after LOAD_WEIGHTS", got, inet, x[:n], False)
    got = await tb.do(op_classify(lay, x_q[n:], True, n))
    compare_results("CLASSIFY_COUNTS after LOAD_WEIGHTS", got, inet, x[n:], True)

    # Bad frames: each would overwrite word 0 or the last word of layer 0 if applied.
    first, words, width = loads[0][0], len(loads[0][1]), loads[0][2]
    nb = -(-width // 8)
    over = (1 << width) if 8 * nb > width else None
    E = ErrorCode
    cases = [
        ("unknown layer", encode_frame(Command.LOAD_WEIGHTS, bytes([99, 0, 0, 0]) + bytes(nb)),
         E.BAD_LAYER),
        ("past the last word", encode_frame(
            Command.LOAD_WEIGHTS, bytes([first]) + (words - 1).to_bytes(3, "little")
            + bytes(2 * nb)), E.BAD_ADDRESS),
        ("no word", encode_frame(Command.LOAD_WEIGHTS, bytes([first, 0, 0, 0])),
         E.BAD_LENGTH),
    ]
    if nb > 1:
        cases.append(("half a word", encode_frame(
            Command.LOAD_WEIGHTS, bytes([first, 0, 0, 0]) + bytes(nb + 1)), E.BAD_LENGTH))
    if over is not None:
        cases.append(("bits above the word", encode_frame(
            Command.LOAD_WEIGHTS, bytes([first, 0, 0, 0]) + over.to_bytes(nb, "little")),
            E.BAD_VALUE))
    bad_crc = bytearray(encode_frame(Command.LOAD_WEIGHTS, bytes([first, 0, 0, 0])
                                     + bytes(nb)))
    bad_crc[-1] ^= 0x10
    cases.append(("bad checksum", bytes(bad_crc), E.BAD_CHECKSUM))
    for name, data, expected in cases:
        code = await tb.expect_error(data)
        assert code == expected, f"{name}: error {code}, expected {int(expected)}"
        dut._log.info("LOAD_WEIGHTS %s -> error %s", name, E(code).name)
    st = await tb.do(op_net_status())
    assert (st["errors"], st["samples"]) == (len(cases), len(x)), st
    got = await tb.do(op_classify(lay, x_q[:n], False, len(x)))
    compare_results("CLASSIFY after bad LOAD_WEIGHTS frames", got, inet, x[:n], False)
    assert tb.stop_errors == 0
