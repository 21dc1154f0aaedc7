// Rounding float32 values to bf16 (round to nearest, ties to even), as the hardware's conversion does: the
// arithmetic of `--precision bf16` (docs/precision.md) in plain TypeScript, for the reference backend's
// gemmBf16, the tests and the benchmarks. No Node built-ins, so the browser entry can reach it.

const word = new Float32Array(1);
const bits = new Uint32Array(word.buffer);

/**
 * x rounded to float32, then to bf16 (round to nearest, ties to even), as a number. NaN stays NaN; a value
 * past the largest bf16 (about 3.39e38) rounds to ±Infinity, as the hardware's conversion does.
 */
export function bf16Round(x: number): number {
  word[0] = x;
  const u = bits[0]!;
  if ((u & 0x7fffffff) > 0x7f800000) return x;
  bits[0] = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16;
  return word[0];
}

/** A copy of x with every element rounded to bf16 (bf16Round). */
export function roundToBf16(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = bf16Round(x[i]!);
  return out;
}
