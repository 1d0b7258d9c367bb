"""The shipped conv default model (golden/models/digits_conv.npz)."""

import time

import numpy as np

from golden.modelfile import load_conv_default


def test_conv_default_meets_the_accuracy_target():
    m = load_conv_default()
    kinds = [layer.kind for layer in m.network.layers]
    assert kinds == ["conv2d", "pool2d", "conv2d", "flatten", "dense"]
    assert m.network.input_shape == (1, 8, 8) and m.network.T == 8
    assert all(l.mpbn is not None for l in m.network.layers if l.kind == "conv2d")
    x = m.inputs(m.test_x)
    f = m.network.forward(x)
    t0 = time.perf_counter()
    q = m.integer().run(x)
    seconds = time.perf_counter() - t0
    float_acc = np.mean(f.predict() == m.test_y)
    fixed_acc = np.mean(q.predict() == m.test_y)
    print(f"\nconv default: float {float_acc:.2%}, 16-bit fixed {fixed_acc:.2%}, integer model "
          f"{seconds:.2f} s for {len(x)} samples")
    assert float_acc >= 0.985
    assert abs(fixed_acc - float_acc) <= 0.005
    assert fixed_acc == m.network.meta["fixed_test_accuracy"]
    assert "--arch conv" in m.network.meta["command"]
