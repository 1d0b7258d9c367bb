"""The network commands of the protocol and the NetworkHost driver, over a fake serial
device (a pty pair) that runs golden's IntegerNetwork: late replies, garbage, wrong
lengths and impossible fields."""

import time

import numpy as np
import pytest

from boards.host import (FakeSerialDevice, NetworkDeviceModel, NetworkHost, WrongDevice,
                         check_results)
from golden.modelfile import load_default
from hdl.protocol import (REPLY_BIT, Command, DeviceError, ErrorCode, NetworkLayout,
                          ProtocolError, encode_frame, network_fingerprint)


@pytest.fixture(scope="module")
def digits():
    model = load_default()
    return model.integer(), model.inputs(model.test_x[:20])


@pytest.fixture
def device():
    made = []

    def make(inet, faults=None, model=None, **kw):
        model = model or NetworkDeviceModel(inet, **kw)
        made.append(FakeSerialDevice(model.handle, faults))
        return made[-1]

    yield make
    for d in made:
        d.close()


def test_layout_sizes_and_fingerprint(digits):
    inet, _ = digits
    lay = NetworkLayout.for_network(inet)
    assert (lay.inputs, lay.input_bits, lay.classes, lay.logit_bits) == (64, 8, 10, 18)
    assert lay.image_bytes == 64 and lay.max_images == 8
    assert lay.record_bytes(False) == 2 + 1 + 10 * 3
    assert lay.layer_neurons == (128, 128) and lay.count_bits == 10       # 4 * 128 = 512
    assert lay.record_bytes(True) == 33 + 2 * 2
    assert network_fingerprint(inet) == network_fingerprint(load_default().integer())
    inet.layers[1].W_q[3, 4] += 1
    try:
        assert network_fingerprint(inet) != lay.fingerprint
    finally:
        inet.layers[1].W_q[3, 4] -= 1
    with pytest.raises(ValueError, match="cannot hold one image of 64 bytes"):
        NetworkLayout.for_network(inet, buffer_bytes=63)
    with pytest.raises(ValueError, match="image 0 pixel 4 = 128 does not fit"):
        lay.pack_images(np.eye(2, 64, 4, dtype=np.int64) * 128)


def test_classify_equals_golden_over_pty(digits, device):
    """20 images in three frames (8 a frame), with and without counts: golden's labels,
    logits and spike counts; the device's sample numbers run on across calls."""
    inet, x = digits
    dev = device(inet)
    host = NetworkHost.open(dev.port, inet, timeout=2.0)
    got = host.classify(x[:12])
    ref = inet.run(x[:12])
    np.testing.assert_array_equal(got.labels, ref.predict())
    np.testing.assert_array_equal(got.logits_q, ref.logits_q)
    assert got.spike_counts is None and list(got.samples) == list(range(12))
    got = host.classify(x[12:], counts=True)
    ref = inet.run(x[12:])
    np.testing.assert_array_equal(got.logits_q, ref.logits_q)
    want = np.stack([s.sum(axis=(0, 2)) for s in ref.spikes], axis=1)
    np.testing.assert_array_equal(got.spike_counts, want)
    assert list(got.samples) == list(range(12, 20))
    assert dev.requests == [Command.NET_STATUS] + [Command.CLASSIFY] * 2 + \
        [Command.CLASSIFY_COUNTS]
    assert host.status()["samples"] == 20


def test_device_errors(digits, device):
    inet, x = digits
    dev = device(inet, buffer_bytes=128)
    host = NetworkHost.open(dev.port, inet)
    image = host.layout.pack_images(inet.quantize_input(x[:1])[0])
    for payload, code in ((image[:-1], "IMAGE_SIZE"), (b"", "BAD_LENGTH"),
                          (image * 3, "BAD_LENGTH")):
        with pytest.raises(DeviceError, match=code):
            host.transact(Command.CLASSIFY, payload)
    with pytest.raises(DeviceError, match="UNKNOWN_COMMAND"):
        host.transact(Command.RUN, image)
    st = host.status()
    assert (st["errors"], st["last_error"], st["samples"]) == (4, ErrorCode.UNKNOWN_COMMAND, 0)


def test_wrong_devices_are_refused(digits, device):
    inet, _ = digits
    other = load_default().integer()
    other.layers[0].bias_q[0] += 1
    with pytest.raises(WrongDevice, match="another network: its fingerprint is 0x"):
        NetworkHost.open(device(other).port, inet)

    def lif_core(cmd, payload):          # a LIF-core bitstream: no network commands
        return encode_frame(0xEE, bytes([ErrorCode.UNKNOWN_COMMAND, cmd]))
    with FakeSerialDevice(lif_core) as dev, \
            pytest.raises(WrongDevice, match="not running a network host-link bitstream"):
        NetworkHost.open(dev.port, inet)


def test_timeout_then_late_reply_is_never_returned(digits, device):
    """Request 1 (CLASSIFY) is answered after the driver gave up; the next classify must
    not take that late reply (its sample numbers are older): it gets golden's results."""
    inet, x = digits
    dev = device(inet, faults={1: ("delay", 0.7)})
    host = NetworkHost.open(dev.port, inet, timeout=0.4)
    with pytest.raises(ProtocolError, match="no reply"):
        host.classify(x[:3])
    time.sleep(0.5)                             # the late reply is now waiting
    got = host.classify(x[3:6])
    np.testing.assert_array_equal(got.logits_q, inet.run(x[3:6]).logits_q)
    assert list(got.samples) == [3, 4, 5]


def test_garbage_and_damaged_replies(digits, device):
    inet, x = digits
    bad = encode_frame(Command.CLASSIFY | REPLY_BIT, b"\x01\x02")
    bad = bad[:-1] + bytes([bad[-1] ^ 0xFF])
    dev = device(inet, faults={1: ("garbage", bytes(range(0x10, 0x40))), 2: ("garbage", bad)})
    host = NetworkHost.open(dev.port, inet)
    np.testing.assert_array_equal(host.classify(x[:2]).labels, inet.run(x[:2]).predict())
    with pytest.raises(ProtocolError, match="CRC"):
        host.classify(x[2:4])
    got = host.classify(x[4:6])
    np.testing.assert_array_equal(got.logits_q, inet.run(x[4:6]).logits_q)
    assert list(got.samples) == [4, 5]


def _set_logit(p, k, value, record=0, rb=33):
    pos = record * rb + 3 + 3 * k
    return p[:pos] + int(value).to_bytes(3, "little", signed=True) + p[pos + 3:]


@pytest.mark.parametrize("name, change, message", [
    ("short", lambda p: p[:-1], "sent 2 images, the reply has 65 bytes"),
    ("long", lambda p: p + p[:33], "sent 2 images, the reply has 99 bytes"),
    ("stale sample", lambda p: bytes([p[0] ^ 1]) + p[1:], "record 0: sample = 1, the "
                                                          "request's image 0 is sample 0"),
    ("swapped records", lambda p: p[33:] + p[:33], "record 0: sample = 1"),
    ("label not the argmax", lambda p: p[:2] + bytes([(p[2] + 1) % 10]) + p[3:],
     "record 0: label = .* is not the argmax"),
    ("label beyond the classes", lambda p: p[:2] + bytes([10]) + p[3:],
     "record 0: label = 10, but there are 10 classes"),
    ("logit beyond 18 bits", lambda p: _set_logit(p, 4, 1 << 20, record=1),
     "record 1: logit 4 = 1048576 does not fit 18 bits"),
])
def test_impossible_records_are_refused(digits, device, name, change, message):
    inet, x = digits
    dev = device(inet, faults={1: ("replace", change)})
    host = NetworkHost.open(dev.port, inet)
    with pytest.raises(ProtocolError, match=message):
        host.classify(x[:2])


def test_impossible_spike_count_is_refused(digits):
    inet, x = digits
    dev = NetworkDeviceModel(inet)
    lay = dev.layout
    frame = dev.handle(Command.CLASSIFY_COUNTS, lay.pack_images(inet.quantize_input(x[:1])[0]))
    payload = bytearray(frame[4:-2])
    assert check_results(lay, bytes(payload), True, 1, 0)["counts"].shape == (1, 2)
    payload[-2:] = (4 * 128 + 1).to_bytes(2, "little")
    with pytest.raises(ProtocolError, match="spike count of layer 1 = 513 exceeds"):
        check_results(lay, bytes(payload), True, 1, 0)
