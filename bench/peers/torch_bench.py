#!/usr/bin/env python3
"""PyTorch peer of `roaf bench`: the same models, data shapes and step, timed the same way, in every formulation we know.

One training step = forward + softmax cross-entropy + backward + Adam (lr 1e-3) update, on random inputs
uniform in [0, 1) and random labels (K = 10 classes). Recurrent models read D = 1 input per step over T
steps and classify from the last state, like psMNIST; feed-forward models read D = 784.

The ROAF models have no fused PyTorch kernel, so how they are written decides how fast PyTorch runs them:
on one machine the same RNN step took 614-690 ms with the input product inside the loop and 870-1,170 ms
with the input term precomputed and indexed per step. A peer written one way only can make a flattering
ratio and a false one, so every formulation below is timed and the fastest is the peer (`best`,
`fastest`); the others are reported too (`formulations`). The formulations (rnn_formulations() and
mlp_formulations() list them):

  roaf-rnn  h_{t+1} = alpha * h_t O^T + beta * tanh(x_t U^T + h_t W^T + b), h_0 = 0, logits from h_T
    literal             the formula as written, one operator per term (the reference the others are checked against)
    step-input          addmm per step: the input product x_t U^T + b, then + h W^T, then beta a + alpha h O^T
    step-input-inplace  the same with addmm_ and tanh_ in place (autograd allows both here)
    precomputed-index   x U^T + b for all steps in one product before the loop, drive[t] per step
    precomputed-unbind  the same, drive.unbind(0): a list of per-step views, no indexing in the loop
    precomputed-inplace precomputed-unbind with tanh_ in place
    concat-wo           one product per step with the concatenated [W; alpha O] (2N x N), split into its halves
    jit-step-input      step-input's loop as one torch.jit.script function
    jit-precomputed     precomputed-inplace's loop as one torch.jit.script function
    manual-backward     a torch.autograd.Function with the backward through time written by hand (as roaf
                        does): per-step products in the loops, the weight gradients as one (N, T*B) x (T*B, N)
                        product after the backward loop instead of T small products summed by autograd
  roaf-rnn with "filter": "permutation" (roaf's default filter: O a signed permutation, (h O^T)[:, i] =
  s_i h[:, p(i)], O(N) a row instead of the N x N product)
    literal             the formula as written with O as a dense matrix (the reference: it checks the gathers)
    gather-step-input   step-input with the filter as h.index_select(1, p) * (alpha s)
    gather-precomputed  precomputed-inplace with the same gather
    jit-gather          gather-precomputed's loop as one torch.jit.script function
    gather-manual-backward  manual-backward with the gather forward and its inverse gather backward
  roaf-mlp  x_{l+1} = alpha * x_l O_l^T + beta * tanh(x_l W_l^T + b_l) between Linear(784, N) and Linear(N, 10)
    literal             the formula as written (the reference)
    loop                addmm per layer (bias and filter term fused into the products)
    loop-inplace        the same with tanh_ in place
    concat-wo           one product per layer with the concatenated [W_l; alpha O_l] and [b_l; 0], then split
    stacked             W and b as one (L, N, N) and one (L, N) parameter, unbound per layer (Adam updates
                        two tensors instead of 2L)
    jit-script          loop-inplace as one torch.jit.script function over the lists of parameters
    jit-stacked         stacked as one torch.jit.script function
  mlp       the same with alpha = 0 and no filter (no concat-wo)
  rnn, lstm, gru        torch.nn.RNN (tanh) / nn.LSTM / nn.GRU: PyTorch's fused modules, one formulation each

Every formulation of a model is built from the same weights (drawn once from --seed) and, before anything is
timed, run on the same batch as the reference: its loss and every parameter's gradient must agree with the
reference's to float32 tolerance (CHECK_TOLERANCE), or the formulation is reported as FAILED (on stderr and
in its `failed` field) and not timed. torch.no_grad() is never used in a timed training step (the forward
of an autograd.Function runs without a graph by design: its backward is the hand-written one, checked too).

Same coefficients and initialisation scales as roaf: ROAF RNN alpha = 1, beta = 0.1, W ~ N(0, 1/N),
U ~ N(0, 9/D); ROAF MLP alpha = 1, beta = min(0.5, 1 / sqrt(L)) (roaf's default); O Haar-distributed (QR with sign fix) or, with "filter": "permutation", a random signed permutation; input
and readout layers uniform(+-1/sqrt(fan_in)), PyTorch's default.

Each formulation is timed with torch.set_num_threads(k) (and OpenBLAS's own thread count set to k) for
every k in --threads: median of --repeats timed steps after --warmup untimed ones (at least 3 for the
scripted formulations, whose profiling executor optimises the graph in its first runs). A thread count
whose last warm-up step is over 3x the formulation's best median so far is reported as abandoned instead
of timed. Prints one JSON object per configuration on stdout (one line each). `--info` prints the versions
and the BLAS kernel only.

Run it with Debian's python3-torch (`/usr/bin/python3`) and with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
unset, or OpenBLAS may run slower kernels than the CPU supports; the output names the kernel it chose.
The harness also sets ATEN_CPU_CAPABILITY=avx512 on AVX-512 CPUs (PyTorch 1.13 otherwise picks its AVX2
elementwise kernels there); the output names the capability in use.
"""

import argparse
import ctypes
import json
import math
import statistics
import sys
import time
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def loaded_libraries(word):
    """Paths of the shared libraries this process loaded whose path contains word (via /proc/self/maps)."""
    try:
        with open('/proc/self/maps') as maps:
            return sorted({line.split()[-1] for line in maps if word in line and '.so' in line})
    except OSError:
        return []


def openblas():
    """The OpenBLAS library torch loaded, or None."""
    for path in loaded_libraries('openblas'):
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            lib.openblas_get_config.restype = ctypes.c_char_p
            return lib
        except (OSError, AttributeError):
            continue
    return None


BLAS = openblas()


def blas_info():
    config = torch.__config__.show()
    capability = config.split('CPU capability usage: ')[1].split()[0] if 'CPU capability usage: ' in config else None
    if BLAS is None:
        # Debian's libblas.so.3 is an alternative: without libopenblas0-pthread (or another optimised BLAS)
        # it is the reference BLAS, plain loops many times slower, and every PyTorch product with it.
        paths = [path for path in loaded_libraries('blas') if 'lapack' not in path]
        optimised = any(name in path for path in paths for name in ('mkl', 'blis', 'atlas'))
        info = {'blas': f'not OpenBLAS: {", ".join(paths) or "no BLAS library found"}', 'blas_kernel': None,
                'aten_capability': capability}
        if not optimised:
            info['blas_warning'] = ('its BLAS is not an optimised one (on Debian without libopenblas0-pthread, libblas.so.3 is '
                                    'the reference BLAS, many times slower): every PyTorch matrix product, and so the PyTorch '
                                    'peer, is far slower than it can be; install libopenblas0-pthread')
        return info
    return {'blas': BLAS.openblas_get_config().decode(), 'blas_kernel': BLAS.openblas_get_corename().decode(),
            'aten_capability': capability}


def set_threads(k):
    torch.set_num_threads(k)
    if BLAS is not None:
        BLAS.openblas_set_num_threads(k)


# ---- weights: drawn once per configuration, copied into every formulation ----

def haar(n, generator):
    """A Haar-distributed orthogonal n x n matrix: QR of a Gaussian with the columns' signs fixed."""
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


def uniform_fan_in(shape, fan_in, generator):
    """PyTorch's default Linear initialisation, uniform(+-1/sqrt(fan_in)), from our generator."""
    bound = 1 / math.sqrt(fan_in)
    return (torch.rand(shape, generator=generator) * 2 - 1) * bound


def signed_permutation(n, generator):
    """(p, s, O): a random permutation p, random signs s and the dense O with O[i, p(i)] = s_i, as roaf draws it."""
    p = torch.randperm(n, generator=generator)
    s = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    O = torch.zeros(n, n)
    O[torch.arange(n), p] = s
    return p, s, O


def rnn_weights(D, N, K, input_scale, filter_kind, generator):
    weights = {'W': torch.randn(N, N, generator=generator) / math.sqrt(N),
               'U': torch.randn(N, D, generator=generator) * (input_scale / math.sqrt(D)),
               'b': torch.zeros(N),
               'readout.W': uniform_fan_in((K, N), N, generator), 'readout.b': uniform_fan_in((K,), N, generator)}
    if filter_kind == 'permutation':
        weights['perm'], weights['signs'], weights['O'] = signed_permutation(N, generator)
    else:
        weights['O'] = haar(N, generator)
    return weights


def mlp_weights(D, N, K, L, filtered, generator):
    weights = {'input.W': uniform_fan_in((N, D), D, generator), 'input.b': uniform_fan_in((N,), D, generator),
               'W': torch.randn(L, N, N, generator=generator) / math.sqrt(N), 'b': torch.zeros(L, N),
               'readout.W': uniform_fan_in((K, N), N, generator), 'readout.b': uniform_fan_in((K,), N, generator)}
    if filtered:
        weights['O'] = torch.stack([haar(N, generator) for _ in range(L)])  # (L, N, N)
    return weights


# ---- ROAF RNN ----

class RoafRNN(nn.Module):
    """The ROAF cell unrolled over T steps and a readout; `loop(model, x)` is the formulation: x (T, B, D) -> h_T (B, N)."""

    def __init__(self, weights, alpha, beta, loop):
        super().__init__()
        self.alpha, self.beta, self.loop = alpha, beta, loop
        self.W = nn.Parameter(weights['W'].clone())  # (N, N)
        self.U = nn.Parameter(weights['U'].clone())  # (N, D)
        self.b = nn.Parameter(weights['b'].clone())  # (N)
        self.register_buffer('O', weights['O'].clone())  # (N, N), fixed
        if 'perm' in weights:  # a signed permutation: O's gather form as well as its dense matrix
            self.register_buffer('perm', weights['perm'].clone())  # (N) int64: p
            self.register_buffer('inverse', torch.argsort(weights['perm']))  # p^-1: the backward's gather
            self.register_buffer('alpha_signs', alpha * weights['signs'])  # (N): alpha s
        self.readout_W = nn.Parameter(weights['readout.W'].clone())  # (K, N)
        self.readout_b = nn.Parameter(weights['readout.b'].clone())  # (K)

    def forward(self, x):
        return F.linear(self.loop(self, x), self.readout_W, self.readout_b)

    def gradients(self):
        return {'W': self.W.grad, 'U': self.U.grad, 'b': self.b.grad, 'readout.W': self.readout_W.grad,
                'readout.b': self.readout_b.grad}


def rnn_literal(m, x):
    h = x.new_zeros(x.shape[1], m.W.shape[0])
    for t in range(x.shape[0]):
        h = m.alpha * (h @ m.O.t()) + m.beta * torch.tanh(x[t] @ m.U.t() + h @ m.W.t() + m.b)
    return h


def rnn_step_input(m, x):
    h = x.new_zeros(x.shape[1], m.W.shape[0])
    Wt, Ut, Ot = m.W.t(), m.U.t(), m.O.t()
    for x_t in x.unbind(0):
        a = torch.tanh(torch.addmm(torch.addmm(m.b, x_t, Ut), h, Wt))
        h = torch.addmm(a, h, Ot, beta=m.beta, alpha=m.alpha)  # beta * a + alpha * h O^T
    return h


def rnn_step_input_inplace(m, x):
    h = x.new_zeros(x.shape[1], m.W.shape[0])
    Wt, Ut, Ot = m.W.t(), m.U.t(), m.O.t()
    for x_t in x.unbind(0):
        # addmm_ on a fresh tensor no backward needs; tanh_'s backward saves its own output, which nothing changes later.
        a = torch.addmm(m.b, x_t, Ut).addmm_(h, Wt).tanh_()
        h = torch.addmm(a, h, Ot, beta=m.beta, alpha=m.alpha)
    return h


def rnn_drive(m, x):
    """x U^T + b for all steps in one product: (T, B, N)."""
    T, B, D = x.shape
    return torch.addmm(m.b, x.reshape(T * B, D), m.U.t()).view(T, B, -1)


def rnn_precomputed_index(m, x):
    drive = rnn_drive(m, x)
    h = x.new_zeros(x.shape[1], m.W.shape[0])
    Wt, Ot = m.W.t(), m.O.t()
    for t in range(x.shape[0]):
        # The backward of drive[t] writes a whole (T, B, N) zero gradient with one slice filled, at every step.
        a = torch.tanh(torch.addmm(drive[t], h, Wt))
        h = torch.addmm(a, h, Ot, beta=m.beta, alpha=m.alpha)
    return h


def rnn_precomputed_unbind(m, x):
    drive = rnn_drive(m, x)
    h = x.new_zeros(x.shape[1], m.W.shape[0])
    Wt, Ot = m.W.t(), m.O.t()
    for drive_t in drive.unbind(0):  # one backward for all the views, stacked once
        a = torch.tanh(torch.addmm(drive_t, h, Wt))
        h = torch.addmm(a, h, Ot, beta=m.beta, alpha=m.alpha)
    return h


def rnn_precomputed_inplace(m, x):
    drive = rnn_drive(m, x)
    h = x.new_zeros(x.shape[1], m.W.shape[0])
    Wt, Ot = m.W.t(), m.O.t()
    for drive_t in drive.unbind(0):
        a = torch.addmm(drive_t, h, Wt).tanh_()
        h = torch.addmm(a, h, Ot, beta=m.beta, alpha=m.alpha)
    return h


def rnn_concat_wo(m, x):
    drive = rnn_drive(m, x)
    N = m.W.shape[0]
    h = x.new_zeros(x.shape[1], N)
    # [W; alpha O]^T (N, 2N): one product gives h W^T and alpha h O^T; O is fixed, so alpha O is a constant.
    WOt = torch.cat([m.W, m.alpha * m.O]).t()
    for drive_t in drive.unbind(0):
        pre, filtered = torch.mm(h, WOt).split(N, dim=1)
        a = torch.add(pre, drive_t).tanh_()
        h = torch.add(filtered, a, alpha=m.beta)
    return h


def rnn_step_input_script(x: Tensor, W: Tensor, U: Tensor, b: Tensor, O: Tensor, alpha: float, beta: float) -> Tensor:
    h = torch.zeros([x.shape[1], W.shape[0]], dtype=x.dtype, device=x.device)
    Wt, Ut, Ot = W.t(), U.t(), O.t()
    for x_t in x.unbind(0):
        a = torch.tanh(torch.addmm(torch.addmm(b, x_t, Ut), h, Wt))
        h = torch.addmm(a, h, Ot, beta=beta, alpha=alpha)
    return h


def rnn_precomputed_script(x: Tensor, W: Tensor, U: Tensor, b: Tensor, O: Tensor, alpha: float, beta: float) -> Tensor:
    T, B, D = x.shape[0], x.shape[1], x.shape[2]
    drive = torch.addmm(b, x.reshape(T * B, D), U.t()).view(T, B, W.shape[0])
    h = torch.zeros([B, W.shape[0]], dtype=x.dtype, device=x.device)
    Wt, Ot = W.t(), O.t()
    for drive_t in drive.unbind(0):
        a = torch.addmm(drive_t, h, Wt).tanh_()
        h = torch.addmm(a, h, Ot, beta=beta, alpha=alpha)
    return h


_SCRIPTED = {}


def scripted(fn):
    """torch.jit.script(fn), compiled once per process (a failure to compile fails the formulation, not the run)."""
    if fn not in _SCRIPTED:
        _SCRIPTED[fn] = torch.jit.script(fn)
    return _SCRIPTED[fn]


def rnn_jit(fn):
    def loop(m, x):
        return scripted(fn)(x, m.W, m.U, m.b, m.O, m.alpha, m.beta)
    return loop


class RoafRNNFunction(torch.autograd.Function):
    """h_T of the ROAF cell with a hand-written backward through time (inputs x (T, B, D), W, U, b, O)."""

    @staticmethod
    def forward(ctx, x, W, U, b, O, alpha, beta):
        T, B, D = x.shape
        N = W.shape[0]
        a_all = torch.addmm(b, x.reshape(T * B, D), U.t()).view(T, B, N)  # drive, overwritten by a_t = tanh(z_t)
        hs = x.new_empty(T + 1, B, N)  # h_0 .. h_T
        hs[0].zero_()
        Wt, Ot = W.t(), O.t()
        a_list, h_list = a_all.unbind(0), hs.unbind(0)
        for t in range(T):
            a = a_list[t].addmm_(h_list[t], Wt).tanh_()
            torch.addmm(a, h_list[t], Ot, beta=beta, alpha=alpha, out=h_list[t + 1])
        ctx.save_for_backward(x, W, O, hs, a_all)
        ctx.alpha, ctx.beta = alpha, beta
        return hs[T].clone()

    @staticmethod
    def backward(ctx, grad_h):
        x, W, O, hs, a_all = ctx.saved_tensors
        alpha, beta = ctx.alpha, ctx.beta
        T, B, N = a_all.shape
        dz = torch.empty_like(a_all)  # (T, B, N): dL/dz_t, z_t = x_t U^T + h_t W^T + b
        g = grad_h.contiguous()  # dL/dh_{t+1}
        a_list, dz_list = a_all.unbind(0), dz.unbind(0)
        for t in range(T - 1, -1, -1):
            a, dz_t = a_list[t], dz_list[t]
            gb = g * beta
            torch.addcmul(gb, gb, a * a, value=-1, out=dz_t)  # beta * g * (1 - a^2)
            g = torch.addmm(torch.mm(dz_t, W), g, O, alpha=alpha)  # dz_t W + alpha * g O
        dz2 = dz.view(T * B, N)
        grad_W = dz2.t() @ hs[:T].reshape(T * B, N)  # sum_t dz_t^T h_t, one product
        grad_U = dz2.t() @ x.reshape(T * B, -1)
        grad_b = dz2.sum(0)
        return None, grad_W, grad_U, grad_b, None, None, None


def rnn_manual_backward(m, x):
    return RoafRNNFunction.apply(x, m.W, m.U, m.b, m.O, m.alpha, m.beta)


# The filter as a gather: h O^T = h[:, p] * s, so alpha h O^T + beta a = h.index_select(1, p) * (alpha s) + beta a.
# mul_ on index_select's fresh output is allowed: neither backward needs the tensor it overwrites.

def rnn_gather_step_input(m, x):
    h = x.new_zeros(x.shape[1], m.W.shape[0])
    Wt, Ut = m.W.t(), m.U.t()
    for x_t in x.unbind(0):
        a = torch.tanh(torch.addmm(torch.addmm(m.b, x_t, Ut), h, Wt))
        h = h.index_select(1, m.perm).mul_(m.alpha_signs).add_(a, alpha=m.beta)
    return h


def rnn_gather_precomputed(m, x):
    drive = rnn_drive(m, x)
    h = x.new_zeros(x.shape[1], m.W.shape[0])
    Wt = m.W.t()
    for drive_t in drive.unbind(0):
        a = torch.addmm(drive_t, h, Wt).tanh_()
        h = h.index_select(1, m.perm).mul_(m.alpha_signs).add_(a, alpha=m.beta)
    return h


def rnn_gather_script(x: Tensor, W: Tensor, U: Tensor, b: Tensor, perm: Tensor, alpha_signs: Tensor, beta: float) -> Tensor:
    T, B, D = x.shape[0], x.shape[1], x.shape[2]
    drive = torch.addmm(b, x.reshape(T * B, D), U.t()).view(T, B, W.shape[0])
    h = torch.zeros([B, W.shape[0]], dtype=x.dtype, device=x.device)
    Wt = W.t()
    for drive_t in drive.unbind(0):
        a = torch.addmm(drive_t, h, Wt).tanh_()
        h = h.index_select(1, perm).mul_(alpha_signs).add_(a, alpha=beta)
    return h


def rnn_jit_gather(m, x):
    return scripted(rnn_gather_script)(x, m.W, m.U, m.b, m.perm, m.alpha_signs, m.beta)


class RoafRNNGatherFunction(torch.autograd.Function):
    """RoafRNNFunction with the filter as a gather: forward h[:, p] * (alpha s), backward (g * (alpha s))[:, p^-1]."""

    @staticmethod
    def forward(ctx, x, W, U, b, perm, inverse, alpha_signs, beta):
        T, B, D = x.shape
        N = W.shape[0]
        a_all = torch.addmm(b, x.reshape(T * B, D), U.t()).view(T, B, N)
        hs = x.new_empty(T + 1, B, N)
        hs[0].zero_()
        Wt = W.t()
        a_list, h_list = a_all.unbind(0), hs.unbind(0)
        for t in range(T):
            a = a_list[t].addmm_(h_list[t], Wt).tanh_()
            torch.mul(h_list[t].index_select(1, perm), alpha_signs, out=h_list[t + 1]).add_(a, alpha=beta)
        ctx.save_for_backward(x, W, inverse, alpha_signs, hs, a_all)
        ctx.beta = beta
        return hs[T].clone()

    @staticmethod
    def backward(ctx, grad_h):
        x, W, inverse, alpha_signs, hs, a_all = ctx.saved_tensors
        beta = ctx.beta
        T, B, N = a_all.shape
        dz = torch.empty_like(a_all)
        g = grad_h.contiguous()
        a_list, dz_list = a_all.unbind(0), dz.unbind(0)
        for t in range(T - 1, -1, -1):
            a, dz_t = a_list[t], dz_list[t]
            gb = g * beta
            torch.addcmul(gb, gb, a * a, value=-1, out=dz_t)
            g = torch.mm(dz_t, W).add_(g.mul(alpha_signs).index_select(1, inverse))  # dz_t W + alpha g O
        dz2 = dz.view(T * B, N)
        grad_W = dz2.t() @ hs[:T].reshape(T * B, N)
        grad_U = dz2.t() @ x.reshape(T * B, -1)
        grad_b = dz2.sum(0)
        return None, grad_W, grad_U, grad_b, None, None, None, None


def rnn_gather_manual_backward(m, x):
    return RoafRNNGatherFunction.apply(x, m.W, m.U, m.b, m.perm, m.inverse, m.alpha_signs, m.beta)


# ---- ROAF MLP and mlp ----

class RoafMLP(nn.Module):
    """Input layer, L (ROAF) layers and a readout; `layers(model, x)` is the formulation: (B, N) -> (B, N).

    stacked: W_l and b_l live in one (L, N, N) and one (L, N) parameter instead of 2L."""

    def __init__(self, weights, alpha, beta, layers, stacked):
        super().__init__()
        self.alpha, self.beta, self.layers, self.stacked = alpha, beta, layers, stacked
        self.input_W = nn.Parameter(weights['input.W'].clone())  # (N, D)
        self.input_b = nn.Parameter(weights['input.b'].clone())  # (N)
        if stacked:
            self.W = nn.Parameter(weights['W'].clone())  # (L, N, N)
            self.b = nn.Parameter(weights['b'].clone())  # (L, N)
        else:
            self.W = nn.ParameterList([nn.Parameter(W.clone()) for W in weights['W']])
            self.b = nn.ParameterList([nn.Parameter(b.clone()) for b in weights['b']])
        if 'O' in weights:
            self.register_buffer('O', weights['O'].clone())  # (L, N, N), fixed
        self.readout_W = nn.Parameter(weights['readout.W'].clone())  # (K, N)
        self.readout_b = nn.Parameter(weights['readout.b'].clone())  # (K)

    def filtered(self):
        return self.alpha != 0

    def forward(self, u):  # u (B, D)
        x = F.linear(u, self.input_W, self.input_b)
        return F.linear(self.layers(self, x), self.readout_W, self.readout_b)

    def gradients(self):
        stack = (lambda p: p.grad) if self.stacked else (lambda ps: torch.stack([p.grad for p in ps]))
        return {'input.W': self.input_W.grad, 'input.b': self.input_b.grad, 'W': stack(self.W), 'b': stack(self.b),
                'readout.W': self.readout_W.grad, 'readout.b': self.readout_b.grad}


def mlp_literal(m, x):
    for l, (W, b) in enumerate(zip(m.W, m.b)):
        a = torch.tanh(x @ W.t() + b)
        x = m.alpha * (x @ m.O[l].t()) + m.beta * a if m.filtered() else a
    return x


def mlp_loop(m, x):
    for l, (W, b) in enumerate(zip(m.W, m.b)):
        a = torch.tanh(torch.addmm(b, x, W.t()))
        x = torch.addmm(a, x, m.O[l].t(), beta=m.beta, alpha=m.alpha) if m.filtered() else a
    return x


def mlp_loop_inplace(m, x):
    Os = m.O.unbind(0) if m.filtered() else None
    for l, (W, b) in enumerate(zip(m.W, m.b)):
        a = torch.addmm(b, x, W.t()).tanh_()
        x = torch.addmm(a, x, Os[l].t(), beta=m.beta, alpha=m.alpha) if Os is not None else a
    return x


def mlp_concat_wo(m, x):
    N = x.shape[1]
    zeros = x.new_zeros(N)
    for W, b, O in zip(m.W, m.b, m.O.unbind(0)):
        # [W_l; alpha O_l] (2N, N) and [b_l; 0]: one addmm gives W_l x + b_l and alpha O_l x.
        pre, filtered = torch.addmm(torch.cat([b, zeros]), x, torch.cat([W, m.alpha * O]).t()).split(N, dim=1)
        x = torch.add(filtered, torch.tanh(pre), alpha=m.beta)
    return x


def mlp_stacked(m, x):
    Os = m.O.unbind(0) if m.filtered() else None
    for l, (W, b) in enumerate(zip(m.W.unbind(0), m.b.unbind(0))):
        a = torch.addmm(b, x, W.t()).tanh_()
        x = torch.addmm(a, x, Os[l].t(), beta=m.beta, alpha=m.alpha) if Os is not None else a
    return x


def mlp_list_script(x: Tensor, Ws: List[Tensor], bs: List[Tensor], Os: List[Tensor], alpha: float, beta: float) -> Tensor:
    for l in range(len(Ws)):
        a = torch.addmm(bs[l], x, Ws[l].t()).tanh_()
        if len(Os) > 0:
            x = torch.addmm(a, x, Os[l].t(), beta=beta, alpha=alpha)
        else:
            x = a
    return x


def mlp_stacked_script(x: Tensor, W: Tensor, b: Tensor, O: Tensor, alpha: float, beta: float, filtered: bool) -> Tensor:
    Ws, bs = W.unbind(0), b.unbind(0)
    Os = O.unbind(0) if filtered else Ws
    for l in range(len(Ws)):
        a = torch.addmm(bs[l], x, Ws[l].t()).tanh_()
        if filtered:
            x = torch.addmm(a, x, Os[l].t(), beta=beta, alpha=alpha)
        else:
            x = a
    return x


def mlp_jit_script(m, x):
    Os = list(m.O.unbind(0)) if m.filtered() else []
    return scripted(mlp_list_script)(x, list(m.W), list(m.b), Os, m.alpha, m.beta)


def mlp_jit_stacked(m, x):
    O = m.O if m.filtered() else x.new_empty(0)
    return scripted(mlp_stacked_script)(x, m.W, m.b, O, m.alpha, m.beta, m.filtered())


# ---- torch.nn recurrent modules ----

class TorchRNN(nn.Module):
    """nn.RNN / nn.LSTM / nn.GRU over the whole sequence, readout from the last state."""

    def __init__(self, kind, D, N, K):
        super().__init__()
        cls = {'rnn': nn.RNN, 'lstm': nn.LSTM, 'gru': nn.GRU}[kind]
        self.cell = cls(D, N)
        self.readout = nn.Linear(N, K)

    def forward(self, x):  # x (T, B, D)
        out, _ = self.cell(x)
        return self.readout(out[-1])

    def gradients(self):
        return {name: p.grad for name, p in self.named_parameters()}


# ---- the formulations of each model ----

class Formulation:
    def __init__(self, name, description, make, warmup=0):
        self.name, self.description, self.make = name, description, make
        self.warmup = warmup  # least untimed steps (a scripted function is optimised in its first runs)


JIT_WARMUP = 3


def rnn_formulation(name, description, loop, warmup=0):
    """A ROAF RNN formulation: RoafRNN with `loop` as its unrolled cell."""
    return Formulation(name, description, lambda w, alpha, beta: RoafRNN(w, alpha, beta, loop), warmup)


def rnn_formulations():
    f = rnn_formulation
    return [
        f('literal', 'the formula as written, one operator per term (reference)', rnn_literal),
        f('step-input', 'addmm per step, input product inside the loop', rnn_step_input),
        f('step-input-inplace', 'step-input with addmm_ and tanh_ in place', rnn_step_input_inplace),
        f('precomputed-index', 'x U^T + b for all steps before the loop, drive[t] per step', rnn_precomputed_index),
        f('precomputed-unbind', 'x U^T + b for all steps before the loop, drive.unbind(0)', rnn_precomputed_unbind),
        f('precomputed-inplace', 'precomputed-unbind with tanh_ in place', rnn_precomputed_inplace),
        f('concat-wo', 'one product per step with [W; alpha O], split', rnn_concat_wo),
        f('jit-step-input', 'step-input loop under torch.jit.script', rnn_jit(rnn_step_input_script), JIT_WARMUP),
        f('jit-precomputed', 'precomputed-inplace loop under torch.jit.script', rnn_jit(rnn_precomputed_script), JIT_WARMUP),
        f('manual-backward', 'autograd.Function, backward through time by hand, weight gradients in one product', rnn_manual_backward),
    ]


def rnn_permutation_formulations():
    """The ROAF RNN with a signed-permutation filter: the dense reference, then the gathers."""
    f = rnn_formulation
    return [
        f('literal', 'the formula as written, O as a dense matrix (reference)', rnn_literal),
        f('gather-step-input', 'step-input with the filter as index_select * alpha s', rnn_gather_step_input),
        f('gather-precomputed', 'precomputed-inplace with the filter as index_select * alpha s', rnn_gather_precomputed),
        f('jit-gather', 'gather-precomputed loop under torch.jit.script', rnn_jit_gather, JIT_WARMUP),
        f('gather-manual-backward', 'manual-backward with the filter as a gather and its inverse', rnn_gather_manual_backward),
    ]


def mlp_formulations(filtered):
    def f(name, description, layers, stacked=False, warmup=0):
        return Formulation(name, description, lambda w, alpha, beta: RoafMLP(w, alpha, beta, layers, stacked), warmup)
    return [
        f('literal', 'the formula as written, one operator per term (reference)', mlp_literal),
        f('loop', 'addmm per layer', mlp_loop),
        f('loop-inplace', 'loop with tanh_ in place', mlp_loop_inplace),
        *([f('concat-wo', 'one addmm per layer with [W_l; alpha O_l] and [b_l; 0], split', mlp_concat_wo)] if filtered else []),
        f('stacked', 'W, b as one (L, N, N) and one (L, N) parameter, unbound per layer', mlp_stacked, stacked=True),
        f('jit-script', 'loop-inplace under torch.jit.script, lists of parameters', mlp_jit_script, warmup=JIT_WARMUP),
        f('jit-stacked', 'stacked under torch.jit.script', mlp_jit_stacked, stacked=True, warmup=JIT_WARMUP),
    ]


def formulations(config, generator):
    """(weights, alpha, beta, [Formulation]) for a configuration; the first formulation is the reference."""
    kind = config['model']
    K = 10
    filter_kind = config.get('filter', 'haar')
    if filter_kind not in ('haar', 'permutation') or (filter_kind != 'haar' and kind != 'roaf-rnn'):
        raise SystemExit(f'torch_bench.py: {kind}: filter {filter_kind!r} is not available (roaf-rnn: haar or '
                         'permutation; roaf-mlp: haar)')
    if kind == 'roaf-rnn':
        alpha, beta = 1.0, 0.1
        listed = rnn_permutation_formulations() if filter_kind == 'permutation' else rnn_formulations()
        return rnn_weights(1, config['hidden'], K, 3.0, filter_kind, generator), alpha, beta, listed
    if kind in ('rnn', 'lstm', 'gru'):
        module = {'rnn': 'nn.RNN', 'lstm': 'nn.LSTM', 'gru': 'nn.GRU'}[kind]
        torch.manual_seed(config.get('seed', 0))  # nn modules draw from the global generator
        model = TorchRNN(kind, 1, config['hidden'], K)
        return None, None, None, [Formulation(module, f'torch.{module}, fused', lambda w, alpha, beta: model)]
    if kind in ('roaf-mlp', 'mlp'):
        L, N = config['depth'], config['width']
        filtered = kind == 'roaf-mlp'
        alpha, beta = (1.0, min(0.5, 1.0 / math.sqrt(L))) if filtered else (0.0, 1.0)
        return mlp_weights(784, N, K, L, filtered, generator), alpha, beta, mlp_formulations(filtered)
    raise SystemExit(f'torch_bench.py: unknown model {kind!r}')


# ---- checking and timing ----

# A formulation passes when its loss is within CHECK_TOLERANCE of the reference's (relative) and every
# parameter's gradient is within CHECK_TOLERANCE * max|reference gradient| of it, element by element. Rounding
# alone (other summation orders in other products, over T = 784 steps or L = 1,000 layers) stays near 1e-5;
# an error as small as losing the input's gradient at one step of 784 moves U's gradient by 7e-4 and beta
# off by 0.1 % moves the loss by 1.5e-3, and a wrong term, coefficient or transpose by far more.
CHECK_TOLERANCE = 1e-4


class FormulationError(Exception):
    pass


def loss_and_gradients(model, x, y):
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    grads = model.gradients()
    missing = [name for name, g in grads.items() if g is None]
    if missing:
        raise FormulationError(f'no gradient for {", ".join(missing)}')
    return loss.item(), {name: g.detach().clone() for name, g in grads.items()}


def check(model, reference, x, y):
    """Compare a formulation's loss and gradients with the reference's (loss, grads); the errors, or FormulationError."""
    ref_loss, ref_grads = reference
    loss, grads = loss_and_gradients(model, x, y)
    loss_error = abs(loss - ref_loss) / max(1.0, abs(ref_loss))
    if not loss_error <= CHECK_TOLERANCE:
        raise FormulationError(f'loss {loss!r} differs from the reference {ref_loss!r} (relative {loss_error:.2e} > {CHECK_TOLERANCE:g})')
    errors = {}
    for name, ref in ref_grads.items():
        g = grads[name]
        if g.shape != ref.shape:
            raise FormulationError(f'gradient of {name} has shape {tuple(g.shape)}, the reference {tuple(ref.shape)}')
        scale = ref.abs().max().item()
        errors[name] = (g - ref).abs().max().item() / (scale if scale > 0 else 1.0)
        if not errors[name] <= CHECK_TOLERANCE:
            raise FormulationError(f'gradient of {name} differs from the reference by {errors[name]:.2e} of its largest '
                                   f'element (> {CHECK_TOLERANCE:g})')
    return {'loss': loss, 'loss_error': loss_error, 'max_gradient_error': max(errors.values()),
            'gradient_errors': {name: float(f'{e:.3g}') for name, e in errors.items()}}


def time_formulation(model, x, y, threads, warmup, repeats, forward):
    """Runs at each thread count, as in the output's `runs`; FormulationError on a non-finite loss."""
    # foreach=True: one multi-tensor update over all parameters, PyTorch's fastest Adam on CPU here.
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    def forward_step():
        with torch.no_grad():  # evaluation only: never part of the timed training step
            return F.cross_entropy(model(x), y).item()

    runs = []
    for k in threads:
        set_threads(k)
        first_loss = None
        warmup_ms = []
        for i in range(warmup):
            start = time.perf_counter()
            loss = train_step()
            warmup_ms.append((time.perf_counter() - start) * 1e3)
            first_loss = loss if first_loss is None else first_loss
            if not math.isfinite(loss):
                raise FormulationError(f'loss {loss} at warm-up step {i + 1}')
        # On a loaded machine more threads can be many times slower (OpenMP and OpenBLAS threads waiting
        # for a busy core); a thread count whose last warm-up step is 3x slower than the best median so
        # far cannot be the best, so it is not timed further (this keeps the run short).
        best_so_far = min((run['ms_per_batch'] for run in runs if 'ms_per_batch' in run), default=math.inf)
        if warmup_ms[-1] > 3 * best_so_far:
            runs.append({'threads': k, 'abandoned': True, 'warmup_ms': [round(w, 3) for w in warmup_ms]})
            continue
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            last_loss = train_step()
            samples.append((time.perf_counter() - start) * 1e3)
        if not math.isfinite(last_loss):
            raise FormulationError(f'loss {last_loss} at a timed step')
        run = {'threads': k, 'ms_per_batch': statistics.median(samples), 'min_ms': min(samples),
               'samples_ms': [round(s, 3) for s in samples], 'first_loss': first_loss, 'last_loss': last_loss}
        if forward:
            for _ in range(max(1, warmup)):
                forward_step()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                forward_step()
                times.append((time.perf_counter() - start) * 1e3)
            run['forward_ms_per_batch'] = statistics.median(times)
        runs.append(run)
    return runs


def warn(line):
    print(f'torch_bench.py: {line}', file=sys.stderr, flush=True)


def bench(config, threads, warmup, repeats, forward, only):
    generator = torch.Generator().manual_seed(config.get('seed', 0))
    weights, alpha, beta, candidates = formulations(config, generator)
    recurrent = config['model'] in ('roaf-rnn', 'rnn', 'lstm', 'gru')
    B = config['batch']
    x = torch.rand((config['seq_len'], B, 1) if recurrent else (B, 784), generator=generator)
    y = torch.randint(0, 10, (B,), generator=generator)
    reference = candidates[0]
    if only is not None:
        candidates = [c for c in candidates if c.name in only or c is reference]
        if not any(c.name in only for c in candidates):
            raise SystemExit(f'torch_bench.py: {config["model"]}: --formulations selects none of its formulations '
                             f'({", ".join(c.name for c in formulations(config, generator)[3])})')

    # Every formulation against the reference on the same weights and batch, before anything is timed.
    set_threads(threads[0])
    ref_model = reference.make(weights, alpha, beta)
    ref_result = loss_and_gradients(ref_model, x, y)
    if not math.isfinite(ref_result[0]):
        raise SystemExit(f'torch_bench.py: {config["model"]}: the reference formulation {reference.name} gives loss {ref_result[0]}')
    del ref_model

    results = []
    for candidate in candidates:
        entry = {'name': candidate.name, 'description': candidate.description, 'reference': candidate is reference}
        try:
            model = candidate.make(weights, alpha, beta)
            entry['check'] = check(model, ref_result, x, y)
            if only is not None and candidate is reference and reference.name not in only:
                entry['not_timed'] = 'reference only (--formulations)'
                results.append(entry)
                continue
            entry['runs'] = time_formulation(model, x, y, threads, max(warmup, candidate.warmup), repeats, forward)
            timed = [run for run in entry['runs'] if 'ms_per_batch' in run]
            entry['best'] = min(timed, key=lambda run: run['ms_per_batch'])
        except Exception as error:  # a formulation that fails is reported, loudly, and the others still run
            entry['failed'] = f'{type(error).__name__}: {error}'
            warn(f'{config["model"]}: formulation {candidate.name} FAILED: {entry["failed"]}')
        finally:
            model = None
        results.append(entry)

    timed = [entry for entry in results if 'best' in entry]
    if not timed:
        raise SystemExit(f'torch_bench.py: {config["model"]}: every formulation failed')
    fastest = min(timed, key=lambda entry: entry['best']['ms_per_batch'])
    best = {**fastest['best'], 'formulation': fastest['name']}
    if forward:
        # The epoch estimate's test pass may use another formulation than training: the fastest forward of all.
        fastest_forward = min(timed, key=lambda entry: entry['best']['forward_ms_per_batch'])
        best['forward_ms_per_batch'] = fastest_forward['best']['forward_ms_per_batch']
        best['forward_formulation'] = fastest_forward['name']
    return {'peer': 'pytorch', 'config': config, 'fastest': fastest['name'], 'best': best, 'runs': fastest['runs'],
            'check_tolerance': CHECK_TOLERANCE, 'formulations': results}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--configs', help='JSON list of configurations: {"model", "batch", "hidden", "seq_len"[, "filter"]} or {"model", "batch", "depth", "width"}')
    parser.add_argument('--threads', default='1,2', help='comma-separated thread counts to try (default 1,2)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--forward', action='store_true', help='also time the forward pass alone')
    parser.add_argument('--formulations', help='comma-separated formulations to time (default all; names a model lacks are ignored; '
                        'the reference is always run, to check the others against)')
    parser.add_argument('--info', action='store_true', help='print versions and the BLAS kernel, then exit')
    args = parser.parse_args()
    info = {'peer': 'pytorch', 'torch': torch.__version__, 'python': sys.version.split()[0], **blas_info()}
    if args.info:
        print(json.dumps(info), flush=True)
        return
    if not args.configs:
        parser.error('--configs is required (or --info)')
    if args.warmup < 1 or args.repeats < 1:
        parser.error(f'--warmup and --repeats must be >= 1, got {args.warmup} and {args.repeats}')
    threads = [int(k) for k in args.threads.split(',')]
    only = None if args.formulations is None else set(args.formulations.split(','))
    listed = rnn_formulations() + rnn_permutation_formulations() + mlp_formulations(True)
    known = {f.name for f in listed} | {'nn.RNN', 'nn.LSTM', 'nn.GRU'}
    if only is not None and not only <= known:
        parser.error(f'--formulations: unknown {", ".join(sorted(only - known))}; known: {", ".join(sorted(known))}')
    for config in json.loads(args.configs):
        result = bench(config, threads, args.warmup, args.repeats, args.forward, only)
        print(json.dumps({**info, **result}), flush=True)


if __name__ == '__main__':
    main()
