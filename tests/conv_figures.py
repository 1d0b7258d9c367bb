"""Figures of a digits-sized conv SNN on the fabric (random weights): plan, cycles, RTL == golden.

Run: .venv/bin/python tests/conv_figures.py 4   (4 = samples simulated, about 5 min)
"""
import sys
import time

import numpy as np
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
from golden.calibrate import calibrate
from golden.examples import example_conv_network
from golden.network import IntegerNetwork
from hdl.network import SpikingNetwork
from train.data import load_digits_split
from test_hdl_network import simulate
layers = [{"kind": "conv2d", "out_channels": 16, "kernel": 3, "padding": 1},
          {"kind": "pool2d", "kernel": 2, "mode": "max"},
          {"kind": "conv2d", "out_channels": 32, "kernel": 3, "padding": 1},
          {"kind": "flatten"}]
net = example_conv_network((1, 8, 8), layers, classes=10, T=4, seed=0, weight_scale=1.5)
xtr, _, xte, _ = load_digits_split()
inet = IntegerNetwork.from_folded(net.fold(), calibrate(
    net, (xtr[:200] / 16.0).reshape(-1, 1, 8, 8), bits=16, weight_bits=8))
dut = SpikingNetwork(inet)
plan = dut.plan
for s in plan.stages:
    print(f"{s.name:8s} lanes {s.lanes:2d} beats/step {s.beats:3d} latency {s.latency:4d} "
          f"memory bits {s.memory_bits}")
print("memory bits", plan.memory_bits)
x = (xte[:100] / 16.0).reshape(-1, 1, 8, 8)
x_q, _ = inet.quantize_input(x)
res = inet.run(x, per_sample=True)
pooled = inet.layers[1].run(res.spikes[0]).out
conv2 = plan.stage("conv2")
est, busy = [], []
for s in range(len(x)):
    a2 = [int(pooled[t, s].sum()) for t in range(inet.T)]
    a3 = [int(res.spikes[1][t, s].sum()) for t in range(inet.T)]
    est.append(plan.cycles_per_sample([int(np.count_nonzero(x_q[s])), a2, a3]))
    busy.append(sum(a * conv2.active_cost for a in a2) / sum(conv2.cycles(a) for a in a2))
print(f"plan: cycles/image mean {np.mean(est):.0f} (100 test samples); conv2 busy "
      f"{np.mean(busy):.3f}")
n = int(sys.argv[1]) if len(sys.argv) > 1 else 4
t0 = time.time()
got = simulate(dut, x_q[:n].reshape(n, -1), monitor=False, limit=10_000_000)
ok = (np.array_equal(got["logits"], res.logits_q[:n])
      and np.array_equal(got["label"], res.predict()[:n]))
print(f"RTL simulation, {n} samples: identical to golden: {ok}; cycles between results "
      f"{np.diff(got['result']).tolist()} (plan {est[1:n]}); {time.time() - t0:.0f} s")
