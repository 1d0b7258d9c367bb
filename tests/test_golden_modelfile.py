"""The spikefold model file: round trip, the embedded default, and bad files."""

import io
import json
import zipfile

import numpy as np
import pytest

from golden.modelfile import DEFAULT_MODEL, FORMAT, VERSION, ModelFile, load_default
from golden.network import Layer, Network


@pytest.fixture(scope="module")
def default():
    return load_default()


def arrays_of(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def write(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def test_default_model_is_small_and_complete(default):
    assert DEFAULT_MODEL.stat().st_size < 200_000
    net = default.network
    assert net.sizes == [64, 128, 128, 10]
    assert (net.T, net.tau, net.v_th) == (4, 0.25, 0.5)
    assert all(layer.norm == "tdbn" and layer.mpbn is not None for layer in net.layers[:-1])
    assert default.formats is not None
    assert default.test_x.shape == (540, 64) and default.test_y.shape == (540,)
    assert default.calib_x.shape == (1257, 64)
    assert default.pixel_scale == 1 / 16
    assert "spikefold train" in net.meta["command"]


def test_round_trip_is_exact(default, tmp_path):
    path = tmp_path / "m.npz"
    default.save(path)
    again = ModelFile.load(path)
    assert again.formats == default.formats
    assert again.network.meta == {**default.network.meta, **default.meta}
    for a, b in zip(default.network.layers, again.network.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias, b.bias)
        assert a.norm_params.keys() == b.norm_params.keys()
        for k in a.norm_params:
            np.testing.assert_array_equal(a.norm_params[k], b.norm_params[k])
        for k in (a.mpbn or {}):
            np.testing.assert_array_equal(a.mpbn[k], b.mpbn[k])
        assert (a.norm, a.norm_eps, a.norm_alpha, a.mpbn_eps, a.readout) == \
               (b.norm, b.norm_eps, b.norm_alpha, b.mpbn_eps, b.readout)
    np.testing.assert_array_equal(again.test_x, default.test_x)
    np.testing.assert_array_equal(again.test_y, default.test_y)
    np.testing.assert_array_equal(again.calib_x, default.calib_x)


def test_float64_values_survive(tmp_path):
    w = np.array([[0.1, 0.25]])                    # 0.1 is not a float32
    net = Network([Layer(w, np.array([0.5]), readout=True)], T=2)
    path = tmp_path / "tiny.npz"
    ModelFile(net).save(path)
    stored = arrays_of(path)
    assert stored["layer0.weight"].dtype == np.float64
    assert stored["layer0.bias"].dtype == np.float32     # lossless, stored compactly
    back = ModelFile.load(path)
    np.testing.assert_array_equal(back.network.layers[0].weight, w)
    assert back.formats is None and back.test_x is None


@pytest.fixture()
def good(tmp_path):
    path = tmp_path / "good.npz"
    load_default().save(path)
    return arrays_of(path)


def test_missing_array(good, tmp_path):
    del good["layer1.mpbn.running_var"]
    with pytest.raises(ValueError, match="missing array 'layer1.mpbn.running_var'"):
        ModelFile.load(write(tmp_path / "bad.npz", good))


def test_missing_header(good, tmp_path):
    del good["version"]
    with pytest.raises(ValueError, match="missing array 'version'"):
        ModelFile.load(write(tmp_path / "bad.npz", good))


def test_wrong_shape(good, tmp_path):
    good["layer0.weight"] = good["layer0.weight"][:, :63]
    with pytest.raises(ValueError, match=r"'layer0.weight' has shape \(128, 63\), expected "
                                         r"\(128, 64\)"):
        ModelFile.load(write(tmp_path / "bad.npz", good))


def test_nan(good, tmp_path):
    good["layer0.norm.gamma"] = good["layer0.norm.gamma"].copy()
    good["layer0.norm.gamma"][5] = np.nan
    with pytest.raises(ValueError, match=r"'layer0.norm.gamma' holds nan at index \(5,\)"):
        ModelFile.load(write(tmp_path / "bad.npz", good))


def test_unknown_version(good, tmp_path):
    good["version"] = np.array(VERSION + 1)
    with pytest.raises(ValueError, match=f"unknown version {VERSION + 1}"):
        ModelFile.load(write(tmp_path / "bad.npz", good))


def test_wrong_format_string(good, tmp_path):
    good["format"] = np.array("spikefold-core")
    with pytest.raises(ValueError, match=f"not '{FORMAT}'"):
        ModelFile.load(write(tmp_path / "bad.npz", good))


def test_unexpected_array(good, tmp_path):
    good["layer0.norm.p"] = np.ones(4)
    with pytest.raises(ValueError, match=r"unexpected arrays \['layer0.norm.p'\]"):
        ModelFile.load(write(tmp_path / "bad.npz", good))


def test_bad_architecture(good, tmp_path):
    arch = json.loads(str(good["architecture"]))
    arch["layers"][0]["norm"] = "layernorm"
    good["architecture"] = np.array(json.dumps(arch))
    with pytest.raises(ValueError, match=r"architecture.layers\[0\].norm must be one of"):
        ModelFile.load(write(tmp_path / "bad.npz", good))
    arch["layers"][0]["norm"] = "tdbn"
    arch["colour"] = "blue"
    good["architecture"] = np.array(json.dumps(arch))
    with pytest.raises(ValueError, match=r"unknown fields \['colour'\]"):
        ModelFile.load(write(tmp_path / "bad.npz", good))
    good["architecture"] = np.array("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ModelFile.load(write(tmp_path / "bad.npz", good))


def test_bad_labels(good, tmp_path):
    good["data.test_y"] = good["data.test_y"].copy()
    good["data.test_y"][0] = 10
    with pytest.raises(ValueError, match="labels outside 0..9"):
        ModelFile.load(write(tmp_path / "bad.npz", good))


def test_not_a_model_file(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a spikefold model file"):
        ModelFile.load(path)
    with pytest.raises(FileNotFoundError):
        ModelFile.load(tmp_path / "absent.npz")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w"):
        pass
    path.write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="missing array 'format'"):
        ModelFile.load(path)


def test_error_names_the_file(good, tmp_path):
    del good["layer2.bias"]
    path = write(tmp_path / "named.npz", good)
    with pytest.raises(ValueError, match="named.npz: missing array 'layer2.bias'"):
        ModelFile.load(path)


def test_stored_formats_give_the_integer_network(default, tmp_path):
    from golden.calibrate import evaluate_model
    integer = default.integer()
    assert [layer.formats for layer in integer.layers] == list(default.formats.layers)
    report = evaluate_model(default)
    assert report.formats == default.formats
    assert report.fixed_accuracy == default.network.meta["fixed_test_accuracy"]
    bare = ModelFile(default.network)
    with pytest.raises(ValueError, match="no fixed-point formats"):
        bare.integer()
    with pytest.raises(ValueError, match="no evaluation data"):
        evaluate_model(bare)
