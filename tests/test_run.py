"""``spikefold run`` against a fake board: a pty pair running golden's IntegerNetwork
(no real board here; the bitstream build is reused or stubbed)."""

import json

import numpy as np
import pytest

from boards.host import FakeSerialDevice, NetworkDeviceModel
from boards.targets import get_target
from golden.modelfile import DEFAULT_MODEL, load_default
from hdl.mapping import HardwareMapping
from spikefold.cli import main
from spikefold.run import build_info, program_commands

BOARD = "ulx3s-85f"


@pytest.fixture(scope="module")
def inet():
    return load_default().integer()


def _seed_build(out, inet, **change):
    """A build directory as ``spikefold run`` leaves it (a dummy bitstream)."""
    out.mkdir(parents=True, exist_ok=True)
    info = dict(build_info(inet, HardwareMapping.for_network(inet), get_target(BOARD),
                           baudrate=115200, buffer_bytes=None), built=True,
                bitstream="top.bit", results={"luts": 1, "bram_blocks": 2,
                                              "fmax_main_mhz": 50.0}, clock_mhz=25.0)
    info.update(change)
    (out / "build.json").write_text(json.dumps(info))
    (out / "top.bit").write_bytes(b"\0" * 16)
    return out


@pytest.fixture
def board(inet):
    made = []

    def make(network=None, faults=None):
        made.append(FakeSerialDevice(NetworkDeviceModel(network or inet).handle, faults))
        return made[-1]

    yield make
    for d in made:
        d.close()


def test_run_reuses_the_bitstream_and_equals_golden(tmp_path, inet, board, capsys):
    out = _seed_build(tmp_path / "b", inet)
    dev = board()
    code = main(["run", "--model", str(DEFAULT_MODEL), "--board", BOARD, "--port", dev.port,
                 "--samples", "12", "--out", str(out), "--counts"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "reusing" in text and f"bitstream: {out / 'top.bit'}" in text
    assert f"openFPGALoader -b ulx3s {out / 'top.bit'}" in text
    assert "labels equal golden: 12/12; logits equal golden: 12/12" in text
    assert "spike counts equal golden: 12/12" in text
    model = load_default()
    acc = np.mean(inet.run(model.inputs(model.test_x[:12])).predict() == model.test_y[:12])
    assert f"accuracy: board {acc:.2%}, golden {acc:.2%} (12 labelled images)" in text


def test_run_images_file_without_build(tmp_path, inet, board, capsys):
    model = load_default()
    np.save(tmp_path / "x.npy", model.inputs(model.test_x[30:35]))
    dev = board()
    code = main(["run", "--model", str(DEFAULT_MODEL), "--board", BOARD, "--port", dev.port,
                 "--images", str(tmp_path / "x.npy"), "--no-build"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "bitstream" not in text and "accuracy" not in text
    assert "classified 5 images" in text and "logits equal golden: 5/5" in text


def test_run_reports_a_difference(tmp_path, inet, board, capsys):
    """A board whose logits differ from golden (the label still their argmax) -> exit 1."""
    def bump(p, record=2, rb=33):
        label = p[record * rb + 2]
        pos = record * rb + 3 + 3 * label
        v = int.from_bytes(p[pos:pos + 3], "little", signed=True) + 1
        return p[:pos] + v.to_bytes(3, "little", signed=True) + p[pos + 3:]
    dev = board(faults={1: ("replace", bump)})
    code = main(["run", "--model", str(DEFAULT_MODEL), "--board", BOARD, "--port", dev.port,
                 "--samples", "4", "--no-build"])
    text = capsys.readouterr().out
    assert code == 1, text
    assert "logits equal golden: 3/4" in text and "first logits mismatch: image 2" in text


def test_run_refuses_a_board_with_another_network(inet, board, capsys):
    other = load_default().integer()
    other.layers[2].W_q[0, 0] += 1
    dev = board(network=other)
    code = main(["run", "--model", str(DEFAULT_MODEL), "--board", BOARD, "--port", dev.port,
                 "--samples", "2", "--no-build"])
    err = capsys.readouterr().err
    assert code == 2 and "the board runs another network: its fingerprint" in err, err


def test_run_errors_in_one_line(tmp_path, capsys):
    code = main(["run", "--model", str(DEFAULT_MODEL), "--board", BOARD, "--no-build"])
    assert code == 2 and "--port is required" in capsys.readouterr().err
    code = main(["run", "--model", str(DEFAULT_MODEL), "--board", BOARD, "--no-build",
                 "--port", str(tmp_path / "no-such-tty"), "--timeout", "0.3"])
    err = capsys.readouterr().err
    assert code == 2 and "no-such-tty" in err and "Traceback" not in err, err


def test_stale_build_is_rebuilt(tmp_path, inet, monkeypatch, capsys):
    """A build directory made for another network is not reused: the build runs."""
    import boards.build
    out = _seed_build(tmp_path / "b", inet, fingerprint="0x00000000")
    calls = []

    def fake_build(platform, top, target, out, info, **kw):
        calls.append((type(top).__name__, kw["timing_allow_fail"]))
        info.update(built=True, bitstream="top.bit")
        return info
    monkeypatch.setattr(boards.build, "_build", fake_build)
    code = main(["run", "--model", str(DEFAULT_MODEL), "--board", BOARD, "--build-only",
                 "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0 and calls == [("NetworkBoardTop", False)], text
    assert "reusing" not in text and "program into flash: openFPGALoader -b ulx3s -f" in text


def test_program_commands():
    assert program_commands(get_target("icebreaker"), "b/top.bin")[0] == \
        ("program into flash", "iceprog b/top.bin")
    assert "dfu-util -D b/top.dfu" in program_commands(get_target("orangecrab-25f"),
                                                       "b/top.bit")[0][1]
