"""The PyTorch trainer (the [train] extra): smoke training, torch == golden float model,
training-mode normalizers == golden.normalizers, the STE surrogate, the CLI."""

import importlib.util
import sys

import numpy as np
import pytest

from golden.modelfile import ModelFile, load_default

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None
needs_torch = pytest.mark.skipif(
    not (HAVE_TORCH and HAVE_SKLEARN),
    reason="torch/scikit-learn not installed (pip install -e '.[train]')")


def test_cli_without_torch_says_which_extra(monkeypatch):
    """Runs everywhere: with torch hidden, `spikefold train` fails in one clear line."""
    from golden.train_cli import run
    from spikefold.cli import main
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(RuntimeError, match=r"needs the \[train\] extra"):
        run(None)
    assert main(["train", "--epochs", "1"]) == 2


@pytest.fixture(scope="module")
def digits():
    from train.data import load_digits_split
    return load_digits_split()


@needs_torch
def test_split_is_fixed(digits):
    xtr, ytr, xte, yte = digits
    assert xtr.shape == (1257, 64) and xte.shape == (540, 64)
    assert xtr.dtype == np.uint8 and xtr.max() == 16
    # The embedded model carries the same split.
    default = load_default()
    np.testing.assert_array_equal(default.test_x, xte)
    np.testing.assert_array_equal(default.test_y, yte)


@needs_torch
@pytest.mark.parametrize("method", ["none", "bn", "tdbn", "bntt", "tebn", "tab", "mpbn",
                                    "homeostatic", "temporal-homeostatic"])
def test_smoke_train_export_and_float_equivalence(method, digits, tmp_path):
    """Tiny training, then torch eval (float64) == golden literal model == golden folded."""
    import torch
    from train.data import PIXEL_SCALE
    from train.export import from_network, to_network
    from train.loop import TrainConfig, train
    xtr, ytr, xte, yte = digits
    small = (xtr[:256], ytr[:256], xte[:200], yte[:200])
    result = train(TrainConfig(method=method, hidden=(24, 16), T=3, epochs=3, batch=32,
                               lr=5e-3), small)
    assert all(np.isfinite(result.losses))
    assert result.losses[-1] < result.losses[0]
    network = to_network(result.model)
    path = tmp_path / "m.npz"
    ModelFile(network).save(path)
    network = ModelFile.load(path).network
    model = from_network(network, dtype=torch.float64)
    x = xte[:200] * PIXEL_SCALE
    for layer in model.hidden:
        layer.record = True
    with torch.no_grad():
        logits = model(torch.as_tensor(x)).numpy()
    ref = network.forward(x)
    folded = network.fold().forward(x)
    for layer, s_ref, s_fold, u_ref in zip(model.hidden, ref.spikes, folded.spikes, ref.u_pre):
        np.testing.assert_array_equal(layer.trace["spikes"].numpy().astype(bool), s_ref)
        np.testing.assert_array_equal(s_ref, s_fold)
        np.testing.assert_allclose(layer.trace["u_pre"].numpy(), u_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(logits, ref.logits, rtol=0, atol=1e-12)
    np.testing.assert_allclose(folded.logits, ref.logits, rtol=0, atol=1e-12)


@needs_torch
def test_default_model_torch_equals_golden(digits):
    """The embedded model in torch (float64, eval) gives golden's spikes and logits on the
    whole test split, and the accuracy recorded at training time."""
    import torch
    from train.data import PIXEL_SCALE
    from train.export import from_network
    default = load_default()
    model = from_network(default.network)
    for layer in model.hidden:
        layer.record = True
    x = default.test_x * PIXEL_SCALE
    with torch.no_grad():
        logits = model(torch.as_tensor(x)).numpy()
    ref = default.network.fold().forward(x)
    for layer, s in zip(model.hidden, ref.spikes):
        np.testing.assert_array_equal(layer.trace["spikes"].numpy().astype(bool), s)
    np.testing.assert_allclose(logits, ref.logits, rtol=0, atol=1e-12)
    acc = float(np.mean(ref.predict() == default.test_y))
    assert acc == pytest.approx(default.network.meta["torch_test_accuracy"], abs=1 / 540)


@needs_torch
def test_training_is_reproducible(digits):
    from train.loop import TrainConfig, train
    xtr, ytr, xte, yte = digits
    small = (xtr[:128], ytr[:128], xte[:64], yte[:64])
    cfg = TrainConfig(method="mpbn", hidden=(16,), T=2, epochs=1, batch=32, seed=3)
    a = train(cfg, small).model.state_dict()
    b = train(cfg, small).model.state_dict()
    for k in a:
        assert np.array_equal(a[k].numpy(), b[k].numpy()), k


@needs_torch
def test_ste_surrogate_window():
    import torch
    from train.modules import SpikeSTE
    z = torch.tensor([-0.1, 0.0, 0.3, 0.5, 0.7, 1.0, 1.1], requires_grad=True)
    o = SpikeSTE.apply(z, 0.5)
    o.sum().backward()
    assert o.tolist() == [0, 0, 0, 0, 1, 1, 1]              # strict z > v_th
    assert z.grad.tolist() == [0, 1, 1, 1, 1, 1, 0]         # Eq. 12: 0 <= z <= 1


@needs_torch
def test_mpbn_updates_running_stats_every_step():
    import torch
    from train.modules import LIFLayer
    torch.manual_seed(0)
    layer = LIFLayer(5, 4, T=3, norm="tdbn", mpbn=True)
    x = torch.rand(3, 8, 5)
    layer.train()
    layer(x)
    # Replay: one update per step from the per-step batch statistics of u_pre.
    layer2 = LIFLayer(5, 4, T=3, norm="tdbn", mpbn=True)
    layer2.load_state_dict({k: v for k, v in layer.state_dict().items()
                            if "mpbn.running" not in k}, strict=False)
    layer2.mpbn.running_mean.zero_()
    layer2.mpbn.running_var.fill_(1)
    layer2.record = True
    layer2.norm.load_state_dict(layer.norm.state_dict())
    layer2.norm.running_mean.zero_()
    layer2.norm.running_var.fill_(1)
    layer2.train()
    layer2(x)
    rm = torch.zeros(4)
    rv = torch.ones(4)
    for t in range(3):
        u = layer2.trace["u_pre"][t]
        rm = 0.9 * rm + 0.1 * u.mean(0)
        rv = 0.9 * rv + 0.1 * u.var(0, unbiased=True)
    torch.testing.assert_close(layer2.mpbn.running_mean, rm)
    torch.testing.assert_close(layer2.mpbn.running_var, rv)


def _golden_norm(kind, C, T):
    normalizers = pytest.importorskip("golden.normalizers")
    return {
        "bn": lambda: normalizers.ThresholdDependentBN(C, threshold=1.0),
        "tdbn": lambda: normalizers.ThresholdDependentBN(C, threshold=0.5),
        "bntt": lambda: normalizers.PerTimestepBN(C, T),
        "tebn": lambda: normalizers.TemporalEffectiveBN(C, T),
        "tab": lambda: normalizers.TemporalAccumulatedBN(C, T),
        "homeostatic": lambda: normalizers.HomeostaticNorm(C),
        "temporal-homeostatic": lambda: normalizers.TemporalHomeostaticNorm(C, T),
    }[kind]()


@needs_torch
@pytest.mark.parametrize("kind", ["bn", "tdbn", "bntt", "tebn", "tab", "homeostatic",
                                  "temporal-homeostatic"])
def test_training_mode_normalizers_match_golden(kind):
    """Torch training-mode outputs and running statistics == golden/normalizers.py."""
    import torch
    from train.modules import make_norm
    T, N, C = 4, 16, 5
    rng = np.random.default_rng(0)
    x = rng.normal(0.5, 2.0, (T, N, C))
    mod = make_norm(kind, C, T, v_th=0.5).double()
    ref = _golden_norm(kind, C, T)
    with torch.no_grad():
        for name, p in mod.named_parameters():
            value = rng.uniform(0.5, 1.5, tuple(p.shape))
            p.copy_(torch.as_tensor(value))
            setattr(ref, name, value.copy())
    mod.train()
    for step in range(2):
        got = mod(torch.as_tensor(x + step)).detach().numpy()
        if kind == "homeostatic":
            want = ref.forward((x + step).reshape(T * N, C)).reshape(T, N, C)
        else:
            want = ref.forward_sequence(x + step)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    for name in ("running_mean", "running_var", "g", "b"):
        if hasattr(ref, name) and hasattr(mod, name):
            np.testing.assert_allclose(getattr(mod, name).numpy(), getattr(ref, name),
                                       rtol=1e-12, atol=1e-12, err_msg=name)
    mod.eval()
    got = mod(torch.as_tensor(x)).detach().numpy()
    if kind == "homeostatic":
        want = ref.forward(x.reshape(T * N, C), training=False).reshape(T, N, C)
    else:
        want = ref.forward_sequence(x, training=False)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@needs_torch
def test_cli_trains_and_writes_a_model_file(tmp_path, capsys):
    from spikefold.cli import main
    out = tmp_path / "tiny.npz"
    code = main(["train", "--hidden", "16", "--T", "2", "--epochs", "1", "--quiet",
                 "--bits", "12", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "fixed accuracy" in text and "wrote" in text
    model = ModelFile.load(out)
    assert model.network.sizes == [64, 16, 10]
    assert all(f.current.bits == 12 for f in model.formats.layers)
    assert model.test_x.shape == (540, 64)


@needs_torch
def test_cli_ablation_table(capsys):
    from spikefold.cli import main
    code = main(["train", "--ablation", "--methods", "none,mpbn", "--seeds", "2", "--hidden",
                 "12", "--T", "2", "--epochs", "1", "--quiet"])
    assert code == 0
    table = capsys.readouterr().out
    assert "| method | test acc. float (%)" in table
    assert "| none |" in table and "| mpbn |" in table
    assert main(["train", "--ablation", "--methods", "groupnorm"]) == 2
