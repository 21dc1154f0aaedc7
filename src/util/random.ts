// Seeded random numbers: every random draw in roaf comes from a `Random` passed in explicitly.
//
// Generator: xoshiro128** (Blackman & Vigna), 32-bit state words, seeded by splitmix32 from one integer
// seed. It is small, fast in JavaScript (32-bit integer math only) and gives the same stream on every
// machine, so the same seed gives the same model, data order and psMNIST permutation everywhere.

/** splitmix32: expands a seed into well-mixed 32-bit words (used only for seeding). */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /** A spare standard normal from the Box-Muller pair. */
  private spareNormal: number | null = null;

  /** `seed`: any integer (taken modulo 2^32). */
  constructor(seed: number) {
    const state = { s: seed >>> 0 };
    this.a = splitmix32(state);
    this.b = splitmix32(state);
    this.c = splitmix32(state);
    this.d = splitmix32(state);
    if ((this.a | this.b | this.c | this.d) === 0) this.a = 1;
  }

  /** A new generator derived from this one's seed stream and a label, for independent sub-streams. */
  static derive(seed: number, label: number): Random {
    return new Random((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(label + 1, 0x85ebca77)) >>> 0);
  }

  /** Next 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** Uniform in [0, 1), 53 bits. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** Standard normal (Box-Muller, both values used). */
  normal(): number {
    if (this.spareNormal !== null) {
      const value = this.spareNormal;
      this.spareNormal = null;
      return value;
    }
    let u = 0;
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const radius = Math.sqrt(-2 * Math.log(u));
    this.spareNormal = radius * Math.sin(2 * Math.PI * v);
    return radius * Math.cos(2 * Math.PI * v);
  }

  /** The state, so a run can resume its stream exactly. */
  getState(): number[] {
    return [this.a, this.b, this.c, this.d, this.spareNormal ?? NaN];
  }

  setState(state: readonly number[]): void {
    if (state.length !== 5) throw new Error(`random state must have 5 numbers, got ${state.length}`);
    const [a, b, c, d, spare] = state as readonly [number, number, number, number, number];
    [this.a, this.b, this.c, this.d] = [a >>> 0, b >>> 0, c >>> 0, d >>> 0];
    this.spareNormal = Number.isNaN(spare) ? null : spare;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher-Yates, from the end). */
  permutation(n: number): Int32Array {
    const perm = new Int32Array(n);
    for (let i = 0; i < n; i++) perm[i] = i;
    this.shuffle(perm);
    return perm;
  }

  /** Shuffles in place (Fisher-Yates, from the end). */
  shuffle(values: Int32Array | number[]): void {
    for (let i = values.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const tmp = values[i]!;
      values[i] = values[j]!;
      values[j] = tmp;
    }
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
