// Models as a whole: filters are orthogonal, the baselines are exact special cases of ROAF, seeds decide
// everything, and the same suite runs on every available backend.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FloatArray } from '../src/backend/backend.js';
import { referenceBackend } from '../src/backend/reference.js';
import { FILTER_KINDS, filterMatrix, makeFilter, orthogonalFromQr } from '../src/nn/filter.js';
import { createModel } from '../src/models/factory.js';
import { validateModelConfig, type ModelConfig, type ModelKind } from '../src/models/config.js';
import { RoafMLP } from '../src/models/roaf-mlp.js';
import { UsageError } from '../src/util/errors.js';
import { Random } from '../src/util/random.js';
import { availableBackends, randomArray } from './helpers.js';

function config(model: ModelKind, overrides: Partial<ModelConfig> = {}): ModelConfig {
  return {
    model,
    inputDim: 6,
    outputs: 3,
    readout: 'last',
    depth: 5,
    width: 8,
    hidden: 8,
    alpha: 0.7,
    beta: 0.4,
    filter: 'haar',
    sharedFilter: false,
    inputScale: 1,
    seed: 3,
    dtype: 'float32',
    ...overrides,
  };
}

describe('filters', () => {
  for (const kind of FILTER_KINDS) {
    for (const n of [1, 7, 64]) {
      it(`${kind} (N = ${n}) is orthogonal in float32: ||OᵀO - I||∞ < 1e-5`, () => {
        const filter = makeFilter(kind, n, new Random(n), 'float32');
        const o = filterMatrix(filter);
        let worst = 0;
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            let dot = 0;
            for (let k = 0; k < n; k++) dot += o[k * n + i]! * o[k * n + j]!;
            worst = Math.max(worst, Math.abs(dot - (i === j ? 1 : 0)));
          }
        }
        assert.ok(worst < 1e-5, `||OᵀO - I||∞ = ${worst}`);
      });
    }
  }

  it('haar applies the sign fix: R = QᵀA has a positive diagonal', () => {
    const n = 9;
    const rng = new Random(4);
    const a = Float64Array.from({ length: n * n }, () => rng.normal());
    const q = orthogonalFromQr(Float64Array.from(a), n, true);
    const unfixed = orthogonalFromQr(Float64Array.from(a), n, false);
    let flipped = 0;
    for (let j = 0; j < n; j++) {
      let rjj = 0;
      for (let k = 0; k < n; k++) rjj += q[k * n + j]! * a[k * n + j]!;
      assert.ok(rjj > 0, `R[${j}][${j}] = ${rjj} is not positive`);
      if (Math.sign(unfixed[j]!) !== Math.sign(q[j]!)) flipped++;
    }
    assert.ok(flipped > 0, 'Householder QR without the fix should differ in some column signs');
  });

  it('the same seed draws the same filter; another seed a different one', () => {
    const one = filterMatrix(makeFilter('haar', 5, new Random(1), 'float64'));
    const again = filterMatrix(makeFilter('haar', 5, new Random(1), 'float64'));
    const other = filterMatrix(makeFilter('haar', 5, new Random(2), 'float64'));
    assert.deepEqual(one, again);
    assert.notDeepEqual(one, other);
  });
});

/** The vanilla deep tanh MLP / residual MLP written out plainly with the model's own parameters. */
function plainMlpForward(model: RoafMLP, B: number, u: FloatArray, residual: boolean): Float32Array {
  const backend = referenceBackend;
  const N = model.config.width;
  let x = new Float32Array(B * N);
  const D = model.config.inputDim;
  backend.gemm({
    transA: false,
    transB: true,
    M: B,
    N,
    K: D,
    alpha: 1,
    A: u,
    lda: D,
    B: model.input.W.value,
    ldb: D,
    beta: 0,
    C: x,
    ldc: N,
  });
  backend.addRowVector(B, N, x, model.input.b.value);
  for (const layer of model.layers) {
    const z = new Float32Array(B * N);
    backend.gemm({
      transA: false,
      transB: true,
      M: B,
      N,
      K: N,
      alpha: 1,
      A: x,
      lda: N,
      B: layer.W.value,
      ldb: N,
      beta: 0,
      C: z,
      ldc: N,
    });
    backend.addRowVector(B, N, z, layer.b.value);
    backend.tanh(B * N, z, z);
    if (residual) for (let i = 0; i < B * N; i++) z[i] = x[i]! + z[i]!;
    x = z;
  }
  const K = model.config.outputs;
  const out = new Float32Array(B * K);
  backend.gemm({
    transA: false,
    transB: true,
    M: B,
    N: K,
    K: N,
    alpha: 1,
    A: x,
    lda: N,
    B: model.readout.W.value,
    ldb: N,
    beta: 0,
    C: out,
    ldc: K,
  });
  backend.addRowVector(B, K, out, model.readout.b.value);
  return out;
}

describe('special cases are exact', () => {
  const B = 4;
  const u = randomArray(B * 6, new Random(9), 1, 'float32');

  it('alpha = 0 is the vanilla tanh MLP, to the last bit', () => {
    const model = createModel(config('roaf-mlp', { alpha: 0, beta: 1 }), referenceBackend) as RoafMLP;
    assert.deepEqual(Array.from(model.forward(B, 1, u)), Array.from(plainMlpForward(model, B, u, false)));
    const baseline = createModel(config('mlp'), referenceBackend) as RoafMLP;
    assert.deepEqual(Array.from(baseline.forward(B, 1, u)), Array.from(plainMlpForward(baseline, B, u, false)));
  });

  it('O = I, alpha = beta = 1 is the residual MLP, to the last bit', () => {
    const model = createModel(
      config('roaf-mlp', { alpha: 1, beta: 1, filter: 'identity' }),
      referenceBackend,
    ) as RoafMLP;
    assert.deepEqual(Array.from(model.forward(B, 1, u)), Array.from(plainMlpForward(model, B, u, true)));
    const baseline = createModel(config('resmlp'), referenceBackend) as RoafMLP;
    assert.deepEqual(Array.from(baseline.forward(B, 1, u)), Array.from(plainMlpForward(baseline, B, u, true)));
  });

  it('a ROAF MLP with a haar filter differs from both', () => {
    const model = createModel(config('roaf-mlp'), referenceBackend) as RoafMLP;
    assert.notDeepEqual(Array.from(model.forward(B, 1, u)), Array.from(plainMlpForward(model, B, u, false)));
  });

  it('alpha = 0 ROAF RNN equals the Elman RNN h_t = tanh(W h + U x + b), to the last bit', () => {
    const T = 6,
      D = 6,
      N = 8;
    const model = createModel(config('rnn'), referenceBackend);
    const xs = randomArray(T * B * D, new Random(10), 1, 'float32');
    const out = model.forward(B, T, xs);
    const params = model.params;
    const W = params.get('cell.W').value,
      U = params.get('cell.U').value,
      b = params.get('cell.b').value;
    let h = new Float32Array(B * N);
    for (let t = 0; t < T; t++) {
      const z = new Float32Array(B * N);
      referenceBackend.gemm({
        transA: false,
        transB: true,
        M: B,
        N,
        K: D,
        alpha: 1,
        A: xs.subarray(t * B * D),
        lda: D,
        B: U,
        ldb: D,
        beta: 0,
        C: z,
        ldc: N,
      });
      referenceBackend.addRowVector(B, N, z, b);
      referenceBackend.gemm({
        transA: false,
        transB: true,
        M: B,
        N,
        K: N,
        alpha: 1,
        A: h,
        lda: N,
        B: W,
        ldb: N,
        beta: 1,
        C: z,
        ldc: N,
      });
      referenceBackend.tanh(B * N, z, z);
      h = z;
    }
    const expected = new Float32Array(B * 3);
    referenceBackend.gemm({
      transA: false,
      transB: true,
      M: B,
      N: 3,
      K: N,
      alpha: 1,
      A: h,
      lda: N,
      B: params.get('readout.W').value,
      ldb: N,
      beta: 0,
      C: expected,
      ldc: 3,
    });
    referenceBackend.addRowVector(B, 3, expected, params.get('readout.b').value);
    assert.deepEqual(Array.from(out), Array.from(expected));
  });
});

describe('seeds', () => {
  for (const kind of ['roaf-mlp', 'roaf-rnn', 'lstm', 'gru'] as ModelKind[]) {
    it(`${kind}: same seed, same weights and outputs; different seed, different weights`, () => {
      const a = createModel(config(kind), referenceBackend);
      const b = createModel(config(kind), referenceBackend);
      const c = createModel(config(kind, { seed: 4 }), referenceBackend);
      assert.deepEqual(a.params.values, b.params.values);
      assert.notDeepEqual(a.params.values, c.params.values);
      const T = a.recurrent ? 5 : 1;
      const x = randomArray(T * 2 * 6, new Random(1), 1, 'float32');
      assert.deepEqual(Array.from(a.forward(2, T, x)), Array.from(b.forward(2, T, x)));
    });
  }
});

describe('recurrent initialisation options (--recurrent-scale, --bias-init, --bias-signs)', () => {
  const cell = (overrides: Partial<ModelConfig>) => {
    const params = createModel(config('roaf-rnn', overrides), referenceBackend).params;
    return { W: params.get('cell.W').value, U: params.get('cell.U').value, b: params.get('cell.b').value };
  };

  it('absent, they are the defaults: W ~ N(0, 1/N) as before, b = 0', () => {
    const plain = cell({});
    const explicit = cell({ recurrentScale: 1, biasInit: 0, biasSigns: 'constant' });
    assert.deepEqual(plain, explicit);
    assert.ok(plain.W.some((w) => w !== 0));
    assert.ok(plain.b.every((b) => b === 0));
  });

  it('scale 0.5 halves W exactly and leaves U alone; r = 0 starts W at zero', () => {
    const one = cell({}),
      half = cell({ recurrentScale: 0.5 }),
      zero = cell({ recurrentScale: 0 });
    // 0.5/√N is exactly half of 1/√N, so each entry is exactly half (halving is exact in binary)
    assert.deepEqual(
      Array.from(half.W),
      Array.from(one.W, (w) => w / 2),
    );
    assert.deepEqual(half.U, one.U);
    assert.ok(zero.W.every((w) => w === 0));
    assert.deepEqual(zero.U, one.U);
  });

  it('bias c: b_i = c (constant) or (-1)^i c (alternating), on every layer of a stack', () => {
    assert.deepEqual(Array.from(cell({ biasInit: -3 }).b), new Array<number>(8).fill(-3));
    assert.deepEqual(
      Array.from(cell({ biasInit: 2.5, biasSigns: 'alternating' }).b),
      [2.5, -2.5, 2.5, -2.5, 2.5, -2.5, 2.5, -2.5],
    );
    const stack = createModel(
      config('roaf-rnn', { layers: 2, biasInit: 1, biasSigns: 'alternating' }),
      referenceBackend,
    );
    for (const name of ['cells.0.b', 'cells.1.b']) {
      assert.deepEqual(Array.from(stack.params.get(name).value), [1, -1, 1, -1, 1, -1, 1, -1], name);
    }
  });

  it('the Elman rnn takes them too (it is the ROAF cell with alpha = 0)', () => {
    const params = createModel(config('rnn', { recurrentScale: 0, biasInit: 1 }), referenceBackend).params;
    assert.ok(params.get('cell.W').value.every((w) => w === 0));
    assert.ok(params.get('cell.b').value.every((b) => b === 1));
  });
});

describe('lstm --forget-bias', () => {
  const lstm = (overrides: Partial<ModelConfig>) => createModel(config('lstm', overrides), referenceBackend).params;

  it("sets b_f = c on every layer; every other weight is the seed's, as without it", () => {
    const N = 8; // config's hidden
    const plain = lstm({ layers: 2 });
    const biased = lstm({ layers: 2, forgetBias: 1.5 });
    for (const { name } of plain.parameters) {
      const a = Array.from(plain.get(name).value),
        b = Array.from(biased.get(name).value);
      if (!name.endsWith('.b') || name.startsWith('readout')) {
        assert.deepEqual(b, a, name);
        continue;
      }
      // gate order [i, f, g, o]: only the forget gate's slice changes
      assert.deepEqual(b.slice(N, 2 * N), new Array<number>(N).fill(1.5), name);
      assert.deepEqual([...b.slice(0, N), ...b.slice(2 * N)], [...a.slice(0, N), ...a.slice(2 * N)], name);
      assert.ok(
        a.slice(N, 2 * N).every((v) => v !== 1.5 && Math.abs(v) <= 1 / Math.sqrt(N)),
        name,
      );
    }
    // 0 is a value like any other (b_f = 0), not the uniform default
    const zero = lstm({ forgetBias: 0 }).get('cell.b').value;
    assert.deepEqual(Array.from(zero.slice(N, 2 * N)), new Array<number>(N).fill(0));
  });

  it('is refused for every other kind, naming the option and the model', () => {
    for (const kind of ['roaf-rnn', 'rnn', 'gru', 'roaf-mlp'] as ModelKind[]) {
      assert.throws(
        () => validateModelConfig(config(kind, { forgetBias: 1 })),
        (error: Error) =>
          error instanceof UsageError &&
          /--forget-bias applies to --model lstm only, got --model /.test(error.message) &&
          error.message.includes(kind),
        kind,
      );
    }
    assert.equal(validateModelConfig(config('lstm', { forgetBias: 1 })).forgetBias, 1);
  });
});

describe('RoafMLP backward', async () => {
  for (const { name, backend } of await availableBackends()) {
    it(`${name}: with a gradient hook (layer by layer) it gives the gradients of the whole-stack kernels`, () => {
      for (const filter of ['haar', 'permutation', 'identity'] as const) {
        const model = createModel(config('roaf-mlp', { filter, depth: 6 }), backend);
        const B = 5;
        const x = randomArray(B * 6, new Random(7), 1, 'float32');
        const g = randomArray(model.forward(B, 1, x).length, new Random(8), 1, 'float32');
        model.params.zeroGrad();
        model.backward(B, 1, x, g);
        const stacked = Float32Array.from(model.params.grads);
        model.params.zeroGrad();
        const seen: number[] = [];
        model.backward(B, 1, x, g, (l) => seen.push(l));
        assert.deepEqual(seen, [6, 5, 4, 3, 2, 1, 0]);
        let scale = 0;
        for (const v of stacked) scale = Math.max(scale, Math.abs(v));
        model.params.grads.forEach((v, i) =>
          assert.ok(Math.abs(v - stacked[i]!) <= 1e-5 * scale, `${filter}: gradient ${i}: ${v} vs ${stacked[i]}`),
        );
      }
    });
  }

  it("stores every layer's W before every b, under the names layers.{l}.W and layers.{l}.b", () => {
    const model = createModel(config('roaf-mlp', { depth: 3 }), referenceBackend) as RoafMLP;
    const names = model.params.parameters.map((p) => p.name);
    assert.deepEqual(names, [
      'input.W',
      'input.b',
      'layers.0.W',
      'layers.1.W',
      'layers.2.W',
      'layers.0.b',
      'layers.1.b',
      'layers.2.b',
      'readout.W',
      'readout.b',
    ]);
    model.layers.forEach((layer, l) => assert.equal(layer.W.offset, model.layers[0]!.W.offset + l * 8 * 8));
  });
});

describe('every backend computes what the reference computes', async () => {
  const backends = await availableBackends();
  it(`runs on: ${backends.map((b) => b.name).join(', ')}`, () => {
    assert.ok(backends.length >= 1);
  });
  for (const { name, backend } of backends) {
    it(`${name}: sumSquares is a float64 sum, exact for gradients far below float32's square range`, () => {
      const tiny = Float32Array.from({ length: 1001 }, (_, i) => (i % 2 ? 3e-20 : 1e-20));
      let expected = 0;
      for (const v of tiny) expected += v * v;
      const got = backend.sumSquares(tiny.length, tiny);
      assert.ok(Math.abs(got - expected) <= 1e-6 * expected, `sumSquares ${got} vs ${expected}`);
    });
    for (const kind of ['roaf-mlp', 'roaf-rnn', 'lstm', 'gru'] as ModelKind[]) {
      it(`${name}: ${kind} forward and gradients match the float64 reference`, () => {
        const c32 = config(kind, { filter: kind === 'roaf-rnn' ? 'permutation' : 'haar' });
        const model = createModel(c32, backend);
        const exact = createModel({ ...c32, dtype: 'float64' }, referenceBackend);
        exact.params.values.set(model.params.values);
        if (kind === 'roaf-mlp' || kind === 'roaf-rnn') {
          // the float64 model drew its filters in float64: use the float32 ones for an exact comparison
          model.filters.forEach((f, l) => {
            const g = exact.filters[l];
            if (f.kind === 'dense' && g?.kind === 'dense') g.matrix.set(f.matrix);
          });
        }
        const T = model.recurrent ? 7 : 1,
          B = 3;
        const x = randomArray(T * B * 6, new Random(2), 1, 'float32');
        const out = model.forward(B, T, x);
        const outExact = exact.forward(B, T, Float64Array.from(x));
        for (let i = 0; i < out.length; i++)
          assert.ok(Math.abs(out[i]! - outExact[i]!) < 1e-5, `output ${i}: ${out[i]} vs ${outExact[i]}`);
        const g = randomArray(out.length, new Random(3), 1, 'float32');
        model.params.zeroGrad();
        exact.params.zeroGrad();
        model.backward(B, T, x, g);
        exact.backward(B, T, Float64Array.from(x), Float64Array.from(g));
        let scale = 0;
        for (let i = 0; i < exact.params.grads.length; i++) scale = Math.max(scale, Math.abs(exact.params.grads[i]!));
        for (let i = 0; i < exact.params.grads.length; i++) {
          assert.ok(
            Math.abs(model.params.grads[i]! - exact.params.grads[i]!) <= 1e-4 * scale,
            `gradient ${i}: ${model.params.grads[i]} vs ${exact.params.grads[i]}`,
          );
        }
      });
    }
  }
});
