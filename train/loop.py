"""Training and evaluation on the digits split (Adam, cross-entropy on the Eq. 3 readout).

Reproducible: the seed fixes the initial weights and the batch order, and training runs on
``threads`` CPU threads (default 1; a different thread count may change the float sums).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .data import PIXEL_SCALE, load_digits_split
from .modules import METHODS, SNN

__all__ = ["TrainConfig", "TrainResult", "train", "evaluate", "to_tensor", "ARCHS",
           "CONV_DEFAULTS"]

#: Network architectures: the MLP of :class:`train.modules.SNN` or the conv SNN of
#: :class:`train.conv.ConvSNN` (input 1 x 8 x 8).
ARCHS = ("mlp", "conv")

#: Settings of the shipped conv model that differ from the MLP's (see README).
CONV_DEFAULTS = {"T": 8, "lr": 3e-3}


@dataclass
class TrainConfig:
    """Settings of one training run (all recorded in the model file's metadata)."""

    method: str = "mpbn"
    hidden: tuple = (128, 128)
    T: int = 4
    epochs: int = 40
    batch: int = 64
    lr: float = 2e-3
    seed: int = 0
    tau: float = 0.25
    v_th: float = 0.5
    threads: int = 1
    arch: str = "mlp"
    channels: tuple = (16, 32)
    pools: tuple = (True, False)
    pool: str = "max"
    elementwise: bool = False

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, not {self.arch!r}")
        self.channels = tuple(int(c) for c in self.channels)
        self.pools = tuple(bool(p) for p in self.pools)
        if self.arch == "conv":
            if not self.channels or min(self.channels) < 1:
                raise ValueError(f"channels must list positive counts, not {self.channels!r}")
            if len(self.pools) != len(self.channels):
                raise ValueError(f"pools must have one flag per conv layer "
                                 f"({len(self.channels)}), not {self.pools!r}")
            if self.pool not in ("max", "avg"):
                raise ValueError(f"pool must be 'max' or 'avg', not {self.pool!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, not {self.method!r}")
        self.hidden = tuple(int(h) for h in self.hidden)
        for name in ("T", "epochs", "batch", "threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"hidden must list positive layer sizes, not {self.hidden!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive number, not {self.lr!r}")

    def to_json(self):
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d["channels"] = list(self.channels)
        d["pools"] = list(self.pools)
        return d


@dataclass
class TrainResult:
    model: SNN
    config: TrainConfig
    train_accuracy: float
    test_accuracy: float
    seconds: float
    losses: list = field(default_factory=list)


def to_tensor(pixels, dtype=torch.float32):
    """Digits pixels (0..16) -> network input ``pixels / 16``."""
    return torch.as_tensor(np.asarray(pixels, dtype=np.float64) * PIXEL_SCALE, dtype=dtype)


def evaluate(model, pixels, labels, batch=1024):
    """Eval-mode accuracy of ``model`` on ``pixels`` (uint8, (n, 64))."""
    model.eval()
    dtype = next(model.parameters()).dtype
    x = to_tensor(pixels, dtype)
    y = torch.as_tensor(labels)
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return correct / len(x)


def train(config=None, data=None, log=None):
    """Train one model; ``data`` = ``load_digits_split()`` output (loaded when ``None``)."""
    config = TrainConfig() if config is None else config
    xtr, ytr, xte, yte = load_digits_split() if data is None else data
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    classes = int(max(ytr.max(), yte.max())) + 1
    if config.arch == "conv":
        from .conv import ConvSNN
        model = ConvSNN(config.method, T=config.T, channels=config.channels, classes=classes,
                        pool=config.pool, pools=config.pools, elementwise=config.elementwise,
                        tau=config.tau, v_th=config.v_th)
    else:
        sizes = (xtr.shape[1], *config.hidden, classes)
        model = SNN(sizes, method=config.method, T=config.T, tau=config.tau, v_th=config.v_th)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = math.ceil(len(xtr) / config.batch)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.epochs * steps_per_epoch)
    x = to_tensor(xtr)
    y = torch.as_tensor(ytr)
    losses = []
    t0 = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = 0.0
        for i in range(0, len(x), config.batch):
            idx = order[i:i + config.batch]
            if len(idx) < 2:
                continue  # batch statistics need two samples
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(x))
        if log is not None:
            log(f"epoch {epoch + 1:3d}/{config.epochs}  loss {losses[-1]:.4f}")
    seconds = time.perf_counter() - t0
    return TrainResult(model, config, evaluate(model, xtr, ytr), evaluate(model, xte, yte),
                       seconds, losses)
