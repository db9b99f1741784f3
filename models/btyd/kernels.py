"""The per-row sums of the BG/NBD and Gamma-Gamma likelihoods as fused numba kernels.

At a million customers NUTS spends its time in the few terms of the likelihood that are not
reducible to distinct values of one summary column: one ``softplus`` per distinct BG/NBD
summary of a repeat buyer, one ``log`` per Gamma-Gamma repeat buyer. Written as pytensor
expressions these take several passes over the rows (gathers, then their scatter-add gradients);
here each is one pass that returns the value together with its gradient. The pytensor ``Op``s
run the same kernel in the C/Python backend (MAP) and in the numba backend (nutpie), and their
``pullback`` reads the gradient outputs of the very node it differentiates, so the pass is not
repeated.
"""

from __future__ import annotations

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key


@numba.njit(nogil=True, cache=True)
def softplus_sum_kernel(r, c, log_T, log_t, ix, iT, it, x, w):
    """``S = sum_i w_i softplus(d_i)``, ``d_i = c[ix_i] + (r + x_i)(log_T[iT_i] - log_t[it_i])``.

    Returns ``S`` and its gradient with respect to ``r``, ``c``, ``log_T`` and ``log_t``.
    """
    grad_c = np.zeros_like(c)
    grad_T = np.zeros_like(log_T)
    grad_t = np.zeros_like(log_t)
    total = 0.0
    grad_r = 0.0
    for i in range(x.shape[0]):
        diff = log_T[iT[i]] - log_t[it[i]]
        shape = r + x[i]
        d = c[ix[i]] + shape * diff
        e = np.exp(-abs(d))
        if d > 0.0:
            total += w[i] * (d + np.log1p(e))
            ws = w[i] / (1.0 + e)
        else:
            total += w[i] * np.log1p(e)
            ws = w[i] * e / (1.0 + e)
        grad_c[ix[i]] += ws
        grad_T[iT[i]] += ws * shape
        grad_t[it[i]] -= ws * shape
        grad_r += ws * diff
    return total, grad_r, grad_c, grad_T, grad_t


@numba.njit(nogil=True, cache=True)
def log_shift_sums_kernel(shift, z, w1, w0):
    """``A = sum w1 ln(shift + z)``, ``B = sum w0 ln(shift + z)`` and their derivatives."""
    a = b = da = db = 0.0
    for i in range(z.shape[0]):
        log_v = np.log(shift + z[i])
        inv = 1.0 / (shift + z[i])
        a += w1[i] * log_v
        b += w0[i] * log_v
        da += w1[i] * inv
        db += w0[i] * inv
    return a, b, da, db


def _scalar():
    return pt.dscalar()


def _vector():
    return pt.dvector()


class SoftplusSum(Op):
    """Outputs ``(S, dS/dr, dS/dc, dS/dlog_T, dS/dlog_t)`` of :func:`softplus_sum_kernel`.

    Inputs ``r, c, log_T, log_t`` are parameters; ``ix, iT, it, x, w`` are data.
    """

    __props__ = ()

    def make_node(self, r, c, log_T, log_t, ix, iT, it, x, w):
        inputs = [pt.as_tensor_variable(v) for v in (r, c, log_T, log_t, ix, iT, it, x, w)]
        outputs = [_scalar(), _scalar(), _vector(), _vector(), _vector()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        for store, value in zip(output_storage, softplus_sum_kernel(*inputs), strict=True):
            store[0] = np.asarray(value, dtype=float)

    def pullback(self, inputs, outputs, cotangents):
        _, g_r, g_c, g_T, g_t = outputs
        g = cotangents[0]
        data = [grad_not_implemented(self, i, inputs[i]) for i in range(4, 9)]
        return [g * g_r, g * g_c, g * g_T, g * g_t, *data]


class LogShiftSums(Op):
    """Outputs ``(A, B, dA/dshift, dB/dshift)`` of :func:`log_shift_sums_kernel`."""

    __props__ = ()

    def make_node(self, shift, z, w1, w0):
        inputs = [pt.as_tensor_variable(v) for v in (shift, z, w1, w0)]
        return Apply(self, inputs, [_scalar() for _ in range(4)])

    def perform(self, node, inputs, output_storage):
        for store, value in zip(output_storage, log_shift_sums_kernel(*inputs), strict=True):
            store[0] = np.asarray(value, dtype=float)

    def pullback(self, inputs, outputs, cotangents):
        connected = [
            g * d
            for g, d in zip(cotangents[:2], outputs[2:], strict=True)
            if not isinstance(g.type, DisconnectedType)
        ]
        shift = pt.add(*connected) if connected else disconnected_type()
        return [shift, *(grad_not_implemented(self, i, inputs[i]) for i in range(1, 4))]


softplus_sum = SoftplusSum()
log_shift_sums = LogShiftSums()


@register_funcify_default_op_cache_key(SoftplusSum)
def _softplus_sum_numba(op, node=None, **kwargs):
    @numba.njit
    def run(r, c, log_T, log_t, ix, iT, it, x, w):
        total, g_r, g_c, g_T, g_t = softplus_sum_kernel(r.item(), c, log_T, log_t, ix, iT, it, x, w)
        return np.asarray(total), np.asarray(g_r), g_c, g_T, g_t

    return run


@register_funcify_default_op_cache_key(LogShiftSums)
def _log_shift_sums_numba(op, node=None, **kwargs):
    @numba.njit
    def run(shift, z, w1, w0):
        a, b, da, db = log_shift_sums_kernel(shift.item(), z, w1, w0)
        return np.asarray(a), np.asarray(b), np.asarray(da), np.asarray(db)

    return run
