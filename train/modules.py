"""Torch modules: LIF with MPBN and the STE surrogate, the SNN normalizers, the MLP SNN.

Neuron (paper Eqs. 1, 2, 7, 8; the official code's ``mem_update``)::

    u_pre[t] = tau * u[t-1] + c[t]                  tau = 0.25 (a decay factor)
    z[t]     = MPBN(u_pre[t])  (or u_pre[t])        only the comparator sees z
    o[t]     = z[t] > v_th                          v_th = 0.5, strict
    u[t]     = u_pre[t] * (1 - o[t])                hard reset of the RAW membrane

Surrogate (paper Eq. 12, STE): ``do/dz = 1 if 0 <= z - v_th + 1/2 <= 1 else 0``, i.e. a unit
window of width 1 centred on the threshold, taken on the comparator input ``z`` (the MPBN
output; the raw membrane without MPBN). With the paper's ``v_th = 0.5`` this is literally
``0 <= z <= 1`` -- the paper's "u" is the value compared with ``V_th``. The reset term uses
the spike detached from the graph (gradients flow through ``u_pre`` only), as in the
tdBN/MPBN research codes.

Normalizers act on synapse outputs of shape ``(T, N, C)``; their training-mode statistics,
running-statistics updates and eval outputs follow ../shared/reference/normalizers.md and
PyTorch's batch-norm conventions (biased variance to normalize, unbiased in the running
variance, momentum 0.1, one update per call unless stated):

=====================  =====================================================================
kind                   statistics / output
=====================  =====================================================================
none                   identity
bn                     over (T, N) pooled; ``gamma * xhat + beta``
tdbn                   over (T, N) pooled; ``gamma * alpha * v_th * xhat + beta``
bntt                   per step over N, per-step running stats, eps 1e-4; ``gamma_t * xhat``
tebn                   over (T, N) pooled; ``p_t * (gamma * xhat + beta)``
tab                    step t over (N, steps 0..t) pooled, per-step stats and affine;
                       ``p_t**2 * (gamma_t * xhat + beta_t)``
homeostatic            EMA gain/bias from (T, N) stats (eta 0.1); ``gamma * (g x + b) + beta``
temporal-homeostatic   the same per step: ``g_t``, ``b_t`` from per-step stats, and
                       per-step ``gamma_t``, ``beta_t``
MPBN (before the       per step over N; ONE set of running stats, updated at every step
comparator)            (T updates per sequence); ``gamma * uhat + beta``
=====================  =====================================================================
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from golden.network import METHODS, NORMS

__all__ = ["SpikeSTE", "make_norm", "MPBN", "LIFLayer", "Readout", "SNN", "METHODS",
           "method_layers"]

def method_layers(method):
    """``(norm after the synapses, MPBN before the comparator?)`` of an ablation method."""
    if method == "mpbn":
        return "tdbn", True
    if method not in NORMS:
        raise ValueError(f"method must be one of {METHODS}, not {method!r}")
    return method, False


class SpikeSTE(torch.autograd.Function):
    """Heaviside ``z > v_th`` forward; STE window ``|z - v_th| <= 1/2`` backward (Eq. 12)."""

    @staticmethod
    def forward(ctx, z, v_th):
        ctx.save_for_backward(z)
        ctx.v_th = v_th
        return (z > v_th).to(z.dtype)

    @staticmethod
    def backward(ctx, grad):
        (z,) = ctx.saved_tensors
        u = z - ctx.v_th + 0.5
        return grad * ((u >= 0) & (u <= 1)).to(grad.dtype), None


def _bn_buffers(module, shape):
    module.register_buffer("running_mean", torch.zeros(shape))
    module.register_buffer("running_var", torch.ones(shape))


def _ch(v, ndim):
    """Per-channel ``v`` (C,) shaped to broadcast against one step ``(N, C, ...)`` of
    ``ndim`` axes (unchanged for ``(N, C)``)."""
    return v.reshape(v.shape + (1,) * (ndim - 2))


def _channel_last(x):
    """Rows of C values: the batch-norm reduction over every axis but the channel. ``x`` is
    one step ``(N, C)`` / ``(N, C, H, W)`` or a window ``(t, N, C)`` / ``(t, N, C, H, W)``."""
    if x.ndim == 2:
        return x
    axis = 1 if x.ndim in (2, 4) else 2
    if x.ndim == 3:          # a dense window (t, N, C)
        return x.reshape(-1, x.shape[-1])
    return x.movedim(axis, -1).reshape(-1, x.shape[axis])


def _update(running_mean, running_var, mu, var_b, n, momentum):
    with torch.no_grad():
        running_mean.mul_(1 - momentum).add_(momentum * mu)
        running_var.mul_(1 - momentum).add_(momentum * var_b * (n / (n - 1)))


class PooledBN(nn.Module):
    """``bn``/``tdbn``/``tebn``: statistics pooled over (T, N), shared over time."""

    def __init__(self, C, T, kind="bn", v_th=0.5, alpha=1.0, eps=1e-5, momentum=0.1):
        super().__init__()
        self.kind, self.eps, self.momentum = kind, eps, momentum
        self.factor = alpha * v_th if kind == "tdbn" else 1.0
        self.alpha = alpha
        self.gamma = nn.Parameter(torch.ones(C))
        self.beta = nn.Parameter(torch.zeros(C))
        _bn_buffers(self, C)
        if kind == "tebn":
            self.p = nn.Parameter(torch.ones(T))

    def forward(self, c):
        T, N = c.shape[:2]
        y = F.batch_norm(c.reshape(T * N, *c.shape[2:]), self.running_mean, self.running_var,
                         self.gamma * self.factor, self.beta, self.training, self.momentum,
                         self.eps).reshape(c.shape)
        if self.kind == "tebn":
            y = self.p.reshape((-1,) + (1,) * (c.ndim - 1)) * y
        return y


class BNTT(nn.Module):
    """Per-step batch norm without beta, separate running statistics per step."""

    def __init__(self, C, T, eps=1e-4, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.gamma = nn.Parameter(torch.ones(T, C))
        _bn_buffers(self, (T, C))

    def forward(self, c):
        return torch.stack([
            F.batch_norm(c[t], self.running_mean[t], self.running_var[t], self.gamma[t], None,
                         self.training, self.momentum, self.eps) for t in range(c.shape[0])])


class TAB(nn.Module):
    """Temporal accumulated batch norm: step t normalized with statistics of steps 0..t."""

    def __init__(self, C, T, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.gamma = nn.Parameter(torch.ones(T, C))
        self.beta = nn.Parameter(torch.zeros(T, C))
        self.p = nn.Parameter(torch.ones(T))
        _bn_buffers(self, (T, C))

    def forward(self, c):
        T, n = c.shape[0], c.ndim - 1
        out = []
        for t in range(T):
            if self.training:
                window = _channel_last(c[:t + 1])
                mu = window.mean(0)
                var = window.var(0, unbiased=False)
                _update(self.running_mean[t], self.running_var[t], mu.detach(), var.detach(),
                        window.shape[0], self.momentum)
            else:
                mu, var = self.running_mean[t], self.running_var[t]
            y = (_ch(self.gamma[t], n) * (c[t] - _ch(mu, n)) / torch.sqrt(_ch(var, n) + self.eps)
                 + _ch(self.beta[t], n))
            out.append(self.p[t] ** 2 * y)
        return torch.stack(out)


class Homeostatic(nn.Module):
    """Homeostatic norm (our definition in normalizers.md): EMA gain and bias, batch-free
    output ``gamma * (g * x + b) + beta``; the training call adapts first, then outputs."""

    def __init__(self, C, T, temporal=False, eta=0.1, eps=1e-5, momentum=0.1):
        super().__init__()
        self.temporal, self.eta, self.eps, self.momentum = temporal, eta, eps, momentum
        shape = (T, C) if temporal else (C,)
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        self.register_buffer("g", torch.ones(shape))
        self.register_buffer("b", torch.zeros(shape))
        _bn_buffers(self, shape)

    def _adapt(self, x, index):
        with torch.no_grad():
            m = x.mean(0)
            v = x.var(0, unbiased=False)
            g_star = 1.0 / torch.sqrt(v + self.eps)
            self.g[index] = (1 - self.eta) * self.g[index] + self.eta * g_star
            self.b[index] = (1 - self.eta) * self.b[index] + self.eta * (-m * g_star)
            _update(self.running_mean[index], self.running_var[index], m, v, x.shape[0],
                    self.momentum)

    def forward(self, c):
        T, N = c.shape[:2]
        n = c.ndim - 1
        if not self.temporal:
            if self.training:
                self._adapt(_channel_last(c.reshape(T * N, *c.shape[2:])), Ellipsis)
            return (_ch(self.gamma, n) * (_ch(self.g, n) * c + _ch(self.b, n))
                    + _ch(self.beta, n))
        out = []
        for t in range(T):
            if self.training:
                self._adapt(_channel_last(c[t]), t)
            # clone: adapting step t + 1 writes into the same buffer
            out.append(_ch(self.gamma[t], n) * (_ch(self.g[t].clone(), n) * c[t]
                                                 + _ch(self.b[t].clone(), n))
                       + _ch(self.beta[t], n))
        return torch.stack(out)


def make_norm(kind, C, T, v_th=0.5):
    """The normalizer module of ``kind`` (one of :data:`golden.network.NORMS`)."""
    if kind == "none":
        return nn.Identity()
    if kind in ("bn", "tdbn", "tebn"):
        return PooledBN(C, T, kind=kind, v_th=v_th)
    if kind == "bntt":
        return BNTT(C, T)
    if kind == "tab":
        return TAB(C, T)
    if kind in ("homeostatic", "temporal-homeostatic"):
        return Homeostatic(C, T, temporal=kind == "temporal-homeostatic")
    raise ValueError(f"norm must be one of {NORMS}, not {kind!r}")


class MPBN(nn.Module):
    """Batch norm on the membrane before the comparator: per-step batch statistics, one
    set of running statistics updated at every step."""

    def __init__(self, C, eps=1e-5, momentum=0.1, shape=None):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        # shape (C, H, W): element-wise MPBN (the paper's Eq. 13), statistics over N only.
        self.shape = (C,) if shape is None else tuple(shape)
        self.gamma = nn.Parameter(torch.ones(self.shape))
        self.beta = nn.Parameter(torch.zeros(self.shape))
        _bn_buffers(self, self.shape)

    def forward(self, u):
        if len(self.shape) == 1:
            return F.batch_norm(u, self.running_mean, self.running_var, self.gamma, self.beta,
                                self.training, self.momentum, self.eps)
        flat = F.batch_norm(u.reshape(len(u), -1), self.running_mean.view(-1),
                            self.running_var.view(-1), self.gamma.reshape(-1),
                            self.beta.reshape(-1), self.training, self.momentum, self.eps)
        return flat.reshape(u.shape)


class LIFLayer(nn.Module):
    """Dense synapses -> normalizer -> LIF (optionally MPBN before the comparator)."""

    def __init__(self, n_in, n_out, T, norm="none", mpbn=False, tau=0.25, v_th=0.5):
        super().__init__()
        self.norm_kind = norm
        self.T, self.tau, self.v_th = T, tau, v_th
        self.fc = nn.Linear(n_in, n_out)
        self.norm = make_norm(norm, n_out, T, v_th)
        self.mpbn = MPBN(n_out) if mpbn else None
        self.record = False
        self.trace = None

    def forward(self, s):
        c = self.norm(self.fc(s))
        u = torch.zeros_like(c[0])
        spikes, u_pres = [], []
        for t in range(c.shape[0]):
            u_pre = self.tau * u + c[t]
            z = u_pre if self.mpbn is None else self.mpbn(u_pre)
            o = SpikeSTE.apply(z, self.v_th)
            u = u_pre * (1 - o.detach())
            spikes.append(o)
            u_pres.append(u_pre)
        out = torch.stack(spikes)
        if self.record:
            self.trace = {"currents": c.detach(), "u_pre": torch.stack(u_pres).detach(),
                          "spikes": out.detach()}
        return out


class Readout(nn.Module):
    """Integrate-only output (paper Eq. 3): mean over T of the layer's currents."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.fc = nn.Linear(n_in, n_out)

    def forward(self, s):
        return self.fc(s).mean(0)


class SNN(nn.Module):
    """MLP SNN with direct input encoding: ``sizes = (n_in, hidden..., classes)``."""

    def __init__(self, sizes=(64, 128, 128, 10), method="mpbn", T=4, tau=0.25, v_th=0.5):
        super().__init__()
        if len(sizes) < 2:
            raise ValueError(f"sizes needs an input and an output size, not {sizes!r}")
        norm, mpbn = method_layers(method)
        self.sizes, self.method, self.T, self.tau, self.v_th = tuple(sizes), method, T, tau, v_th
        self.hidden = nn.ModuleList(
            LIFLayer(a, b, T, norm=norm, mpbn=mpbn, tau=tau, v_th=v_th)
            for a, b in zip(sizes[:-2], sizes[1:-1]))
        self.readout = Readout(sizes[-2], sizes[-1])

    def forward(self, x):
        s = x.unsqueeze(0).expand(self.T, *x.shape)
        for layer in self.hidden:
            s = layer(s)
        return self.readout(s)
