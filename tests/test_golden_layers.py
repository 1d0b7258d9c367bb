"""Layer kinds, per-layer neurons and model file v2 (golden/layers, golden/modelfile.py)."""

import json

import numpy as np
import pytest

from golden.calibrate import calibrate
from golden.examples import example_network
from golden.layers import KINDS, Dense, Neuron, kind_class
from golden.modelfile import VERSION, ModelFile, is_network_file, load_default
from golden.network import IntegerNetwork, Network


def mixed_network(seed=0):
    """Three LIF layers with different neurons: leaky zero reset, IF subtract, leaky subtract."""
    net = example_network((12, 16, 16, 16, 5), norm="tdbn", mpbn=True, T=5, seed=seed,
                          weight_scale=1.5)
    neurons = [Neuron(0.25, 0.5, "zero"), Neuron(1.0, 0.4, "subtract"),
               Neuron(0.75, 0.6, "subtract")]
    for layer, neuron in zip(net.layers, neurons):
        layer.neuron = neuron
        if neuron.reset != "zero":
            layer.mpbn = None                   # MPBN resets to zero (see the next test)
    return Network(net.layers, T=net.T, tau=net.tau, v_th=net.v_th)


def inputs(n=200, n_in=12, seed=1):
    return np.random.default_rng(seed).integers(0, 17, (n, n_in)) / 16.0


def test_registry_names_the_kinds():
    assert KINDS["dense"] is Dense
    with pytest.raises(ValueError, match=r"layer3.kind must be one of \[.*'dense'.*not 'lstm'"):
        kind_class("lstm", "layer3")


def test_neuron_checks_its_fields():
    with pytest.raises(ValueError, match=r"neuron.tau must be in \(0, 1\], not 1.5"):
        Neuron(1.5)
    with pytest.raises(ValueError, match="neuron.reset must be one of"):
        Neuron(0.5, 0.5, "hard")
    assert not Neuron(1.0).leaky and Neuron(0.5).leaky


def test_mpbn_with_subtract_reset_is_refused():
    net = example_network((6, 8, 3), norm="none", mpbn=True, T=2)
    net.layers[0].neuron = Neuron(0.5, 0.5, "subtract")
    with pytest.raises(ValueError, match="layer0: MPBN with reset 'subtract' is not supported"):
        net.check()


def test_per_layer_neurons_fold_exactly():
    net = mixed_network()
    x = inputs()
    ref = net.forward(x)
    got = net.fold().forward(x)
    for a, b in zip(ref.spikes, got.spikes):
        assert 0 < a.mean() < 1
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(got.logits, ref.logits, rtol=0, atol=1e-12)


def test_per_layer_neurons_change_the_function():
    """Each layer really uses its own neuron (not the network default)."""
    net = mixed_network()
    x = inputs()
    spikes = net.forward(x).spikes
    plain = Network([Dense(l.weight, l.bias, norm=l.norm, norm_params=l.norm_params,
                           norm_eps=l.norm_eps, mpbn=l.mpbn, readout=l.readout)
                     for l in net.layers], T=net.T, tau=net.tau, v_th=net.v_th)
    other = plain.forward(x).spikes
    np.testing.assert_array_equal(spikes[0], other[0])     # layer 0 uses the default neuron
    assert not np.array_equal(spikes[1], other[1])


def test_integer_network_takes_each_layers_neuron():
    net = mixed_network()
    x = inputs()
    inet = IntegerNetwork.from_folded(net.fold(), calibrate(net, x, bits=16))
    got = [(l.config.tau, l.config.reset) for l in inet.layers[:-1]]
    assert got == [(0.25, "zero"), (1.0, "subtract"), (0.75, "subtract")]
    q = inet.run(x)
    f = net.forward(x)
    agree = [np.mean(a == b) for a, b in zip(f.spikes, q.spikes)]
    assert min(agree) > 0.97, agree
    assert "reset" in q.saturations[1] and "reset" not in q.saturations[0]
    np.testing.assert_array_equal(q.logits_q, inet.run(x, per_sample=True).logits_q)


def test_model_file_v2_round_trip_keeps_neurons(tmp_path):
    net = mixed_network()
    x = inputs()
    formats = calibrate(net, x, bits=12)
    path = tmp_path / "mixed.npz"
    ModelFile(net, formats).save(path)
    again = ModelFile.load(path)
    assert [l.neuron for l in again.network.layers] == [l.neuron for l in net.layers]
    np.testing.assert_array_equal(again.integer().run(x).logits_q,
                                  IntegerNetwork.from_folded(net.fold(), formats).run(x).logits_q)
    with np.load(path) as data:
        arch = json.loads(str(data["architecture"]))
        assert int(data["version"]) == VERSION == 2
    assert arch["input_shape"] == [12]
    assert [l["kind"] for l in arch["layers"]] == ["dense"] * 4
    assert arch["layers"][1]["neuron"] == {"tau": 1.0, "v_th": 0.4, "reset": "subtract"}


def test_v1_file_loads_bit_identically_after_a_v2_save(tmp_path):
    """The embedded default is a version-1 file; re-saved as version 2 it gives the same
    float and integer results, bit for bit."""
    with np.load(load_default.__globals__["DEFAULT_MODEL"]) as data:
        assert int(data["version"]) == 1
    v1 = load_default()
    path = tmp_path / "v2.npz"
    v1.save(path)
    v2 = ModelFile.load(path)
    x = v1.inputs(v1.test_x)
    np.testing.assert_array_equal(v1.network.forward(x).logits, v2.network.forward(x).logits)
    a, b = v1.integer().run(x), v2.integer().run(x)
    np.testing.assert_array_equal(a.logits_q, b.logits_q)
    for s, t in zip(a.spikes, b.spikes):
        np.testing.assert_array_equal(s, t)
    assert float(np.mean(a.predict() == v1.test_y)) == v1.network.meta["fixed_test_accuracy"]


def test_v2_errors_name_the_entry(tmp_path):
    path = tmp_path / "m.npz"
    load_default().save(path)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    arch = json.loads(str(arrays["architecture"]))
    arch["layers"][1]["kind"] = "lstm"
    arrays["architecture"] = np.array(json.dumps(arch))
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=r"bad.npz: architecture.layers\[1\].kind must be one "
                                         r"of \[.*'dense'.*not 'lstm'"):
        ModelFile.load(bad)
    arch["layers"][1]["kind"] = "dense"
    arch["layers"][1]["neuron"] = {"tau": 2.0, "v_th": 0.5, "reset": "zero"}
    arrays["architecture"] = np.array(json.dumps(arch))
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match=r"architecture.layers\[1\].neuron: neuron.tau must "
                                         r"be in \(0, 1\], not 2.0"):
        ModelFile.load(bad)


def test_damaged_files_are_named(tmp_path):
    path = tmp_path / "m.npz"
    load_default().save(path)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated.npz: .*damaged or truncated"):
        ModelFile.load(truncated)
    text = tmp_path / "text.npz"
    text.write_text("this is not a model\n")
    with pytest.raises(ValueError, match=r"text.npz: not a spikefold model file \(not an .npz "
                                         r"archive"):
        ModelFile.load(text)
    assert is_network_file(path) and not is_network_file(text)
