#!/usr/bin/env python3
"""PyTorch peer of `roaf bench`: the same models, data shapes and step, timed the same way.

One training step = forward + softmax cross-entropy + autograd backward + Adam (lr 1e-3) update, on
random inputs uniform in [0, 1) and random labels (K = 10 classes). Recurrent models read D = 1 input per
step over T steps and classify from the last state, like psMNIST; feed-forward models read D = 784.

  roaf-rnn  a ROAF cell as a Python loop over time with autograd:
            h = alpha * (h @ O.T) + beta * tanh(h @ W.T + x_t @ U.T + b), with the input term x @ U.T + b
            computed for all steps in one product before the loop (as a careful PyTorch user would)
  rnn       torch.nn.RNN (tanh)          lstm  torch.nn.LSTM (fused)          gru  torch.nn.GRU
  roaf-mlp  input Linear(784, N), L ROAF layers x = alpha * (x @ O_l.T) + beta * tanh(x @ W_l.T + b_l)
            as a Python loop, readout Linear(N, 10)
  mlp       the same with alpha = 0

Same coefficients and initialisation scales as roaf: ROAF RNN alpha = 1, beta = 0.1, W ~ N(0, 1/N),
U ~ N(0, 9/D); ROAF MLP alpha = 1, beta = min(0.5, 1 / sqrt(L)) (roaf's default); O Haar-distributed (QR with sign fix).

Each configuration is timed with torch.set_num_threads(k) (and OpenBLAS's own thread count set to k) for
every k in --threads: median of --repeats timed steps after --warmup untimed ones. A thread count whose
last warm-up step is over 3x the best median so far is reported as abandoned instead of timed. Prints one JSON object
per configuration on stdout (one line each). `--info` prints the versions and the BLAS kernel only.

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

import torch
import torch.nn.functional as F
from torch import nn


def openblas():
    """The OpenBLAS library torch loaded (via /proc/self/maps), or None."""
    try:
        with open('/proc/self/maps') as maps:
            paths = sorted({line.split()[-1] for line in maps if 'openblas' in line and '.so' in line})
    except OSError:
        return None
    for path in paths:
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
        return {'blas': 'not OpenBLAS (or not found)', 'blas_kernel': None, 'aten_capability': capability}
    return {'blas': BLAS.openblas_get_config().decode(), 'blas_kernel': BLAS.openblas_get_corename().decode(),
            'aten_capability': capability}


def set_threads(k):
    torch.set_num_threads(k)
    if BLAS is not None:
        BLAS.openblas_set_num_threads(k)


def haar(n, generator):
    """A Haar-distributed orthogonal n x n matrix: QR of a Gaussian with the columns' signs fixed."""
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


class RoafRNN(nn.Module):
    def __init__(self, D, N, K, alpha, beta, input_scale, generator):
        super().__init__()
        self.alpha, self.beta = alpha, beta
        self.W = nn.Parameter(torch.randn(N, N, generator=generator) / math.sqrt(N))
        self.U = nn.Parameter(torch.randn(N, D, generator=generator) * (input_scale / math.sqrt(D)))
        self.b = nn.Parameter(torch.zeros(N))
        self.register_buffer('O', haar(N, generator))
        self.readout = nn.Linear(N, K)

    def forward(self, x):  # x (T, B, D)
        T, B, _ = x.shape
        drive = torch.addmm(self.b, x.reshape(T * B, -1), self.U.t()).view(T, B, -1)  # (T, B, N)
        h = x.new_zeros(B, self.W.shape[0])
        Wt, Ot = self.W.t(), self.O.t()
        # unbind, not drive[t]: the backward of indexing writes a whole (T, B, N) gradient at every step.
        for drive_t in drive.unbind(0):
            a = torch.tanh(torch.addmm(drive_t, h, Wt))
            h = torch.addmm(a, h, Ot, beta=self.beta, alpha=self.alpha)  # beta * a + alpha * h Oᵀ
        return self.readout(h)


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


class RoafMLP(nn.Module):
    def __init__(self, D, N, K, L, alpha, beta, generator):
        super().__init__()
        self.alpha, self.beta = alpha, beta
        self.input = nn.Linear(D, N)
        self.W = nn.ParameterList([nn.Parameter(torch.randn(N, N, generator=generator) / math.sqrt(N)) for _ in range(L)])
        self.b = nn.ParameterList([nn.Parameter(torch.zeros(N)) for _ in range(L)])
        if alpha != 0:
            self.register_buffer('O', torch.stack([haar(N, generator) for _ in range(L)]))  # (L, N, N)
        self.readout = nn.Linear(N, K)

    def forward(self, u):  # u (B, D)
        x = self.input(u)
        for l, (W, b) in enumerate(zip(self.W, self.b)):
            a = torch.tanh(torch.addmm(b, x, W.t()))
            x = a if self.alpha == 0 else torch.addmm(a, x, self.O[l].t(), beta=self.beta, alpha=self.alpha)
        return self.readout(x)


def build(config, generator):
    kind = config['model']
    K = 10
    if kind == 'roaf-rnn':
        return RoafRNN(1, config['hidden'], K, 1.0, 0.1, 3.0, generator)
    if kind in ('rnn', 'lstm', 'gru'):
        return TorchRNN(kind, 1, config['hidden'], K)
    if kind in ('roaf-mlp', 'mlp'):
        L = config['depth']
        alpha, beta = (1.0, min(0.5, 1.0 / math.sqrt(L))) if kind == 'roaf-mlp' else (0.0, 1.0)
        return RoafMLP(784, config['width'], K, L, alpha, beta, generator)
    raise SystemExit(f'torch_bench.py: unknown model {kind!r}')


def bench(config, threads, warmup, repeats, forward):
    generator = torch.Generator().manual_seed(config.get('seed', 0))
    model = build(config, generator)
    recurrent = config['model'] in ('roaf-rnn', 'rnn', 'lstm', 'gru')
    B = config['batch']
    x = torch.rand((config['seq_len'], B, 1) if recurrent else (B, 784), generator=generator)
    y = torch.randint(0, 10, (B,), generator=generator)
    # foreach=True: one multi-tensor update over all parameters, PyTorch's fastest Adam on CPU here.
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    def forward_step():
        with torch.no_grad():
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
                raise SystemExit(f'torch_bench.py: {config["model"]}: loss {loss} at warm-up step {i + 1}')
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
        run = {'threads': k, 'ms_per_batch': statistics.median(samples), 'min_ms': min(samples),
               'samples_ms': [round(s, 3) for s in samples], 'first_loss': first_loss, 'last_loss': last_loss}
        if forward:
            forward_step()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                forward_step()
                times.append((time.perf_counter() - start) * 1e3)
            run['forward_ms_per_batch'] = statistics.median(times)
        runs.append(run)
    best = min((run for run in runs if 'ms_per_batch' in run), key=lambda run: run['ms_per_batch'])
    return {'peer': 'pytorch', 'config': config, 'best': best, 'runs': runs}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--configs', help='JSON list of configurations: {"model", "batch", "hidden", "seq_len"} or {"model", "batch", "depth", "width"}')
    parser.add_argument('--threads', default='1,2', help='comma-separated thread counts to try (default 1,2)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--forward', action='store_true', help='also time the forward pass alone')
    parser.add_argument('--info', action='store_true', help='print versions and the BLAS kernel, then exit')
    args = parser.parse_args()
    info = {'peer': 'pytorch', 'torch': torch.__version__, 'python': sys.version.split()[0], **blas_info()}
    if args.info:
        print(json.dumps(info), flush=True)
        return
    if not args.configs:
        parser.error('--configs is required (or --info)')
    threads = [int(k) for k in args.threads.split(',')]
    for config in json.loads(args.configs):
        result = bench(config, threads, args.warmup, args.repeats, args.forward)
        print(json.dumps({**info, **result}), flush=True)


if __name__ == '__main__':
    main()
