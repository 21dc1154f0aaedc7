// The SIMD vocabulary: one small set of vector operations written once per instruction set, so every kernel
// is written once. Each kernel file is compiled three times for the addon, with ROAF_ISA_AVX512, ROAF_ISA_AVX2
// or neither defined (portable C, what other CPUs get), and once more for WebAssembly with ROAF_ISA_SIMD128
// (native/wasm/, docs/wasm.md); `ROAF_SUFFIX(name)` gives each copy its own symbols.
//
//   vf                  a vector of VL floats
//   vzero, vset1        all zeros, every lane = x
//   vload, vstore       unaligned load / store of VL floats
//   vloadn, vstoren     the first n < VL lanes only (tails); other lanes read as 0 and are not written
//   vadd vsub vmul vdiv vmin vmax, vfma(a, b, c) = a*b + c, vnmadd(a, b, c) = c - a*b
//   vsum                horizontal sum of the lanes
//   vexp, vtanh, vsigmoid   elementwise functions, float32 accurate to a few ulp
//   vtranspose(r)       r[0..VL) as the rows of a VL x VL block, transposed in registers
//   prefetch_line(p)    asks for the cache line holding p (a hint: no effect on results)

#ifndef ROAF_SIMD_H
#define ROAF_SIMD_H

#include <math.h>
#include <stdint.h>

/**
 * Asks for the cache line holding p. On x86 an asm statement, not __builtin_prefetch: GCC 12 deleted loops whose
 * only statements were __builtin_prefetch calls (the bf16 steps' prefetch of the next step's rows compiled to
 * nothing, and their stores waited on memory: 14 % of the bf16 cell's forward at N = 256, B = 64). prefetcht0
 * serves writes too (a line no other core holds arrives exclusive); prefetchw measured the same. The address is
 * a register operand: with a memory operand GCC kept the float32 tiles' accumulators in memory around it (the
 * float32 step ran at half speed).
 */
static inline void prefetch_line(const void *p) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__ volatile("prefetcht0 (%0)" : : "r"(p));
#else
  __builtin_prefetch(p, 0, 3);
#endif
}

#define ROAF_CAT2(a, b) a##_##b
#define ROAF_CAT(a, b) ROAF_CAT2(a, b)

#if defined(ROAF_ISA_AVX512) || defined(ROAF_ISA_AVX2)
#include <immintrin.h>
/** r[0..8) as the rows of an 8 x 8 block of floats, transposed in registers: 32-bit pairs, 64-bit pairs, then
 * 128-bit halves (the AVX2 vtranspose, and the permutation filter's row groups on both x86 copies). */
static inline void transpose8x8(__m256 r[8]) {
  __m256 t[8], s[8];
  for (int i = 0; i < 4; i++) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; i++) {
    s[4 * i] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    s[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    s[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    s[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
  }
}
#endif

#if defined(ROAF_ISA_AVX512)
#include <immintrin.h>
#define ROAF_SUFFIX(name) ROAF_CAT(name, avx512)
#define ROAF_ISA_NAME "avx512"
#define VL 16
typedef __m512 vf;
static inline vf vzero(void) { return _mm512_setzero_ps(); }
static inline vf vset1(float x) { return _mm512_set1_ps(x); }
static inline vf vload(const float *p) { return _mm512_loadu_ps(p); }
static inline void vstore(float *p, vf v) { _mm512_storeu_ps(p, v); }
static inline vf vloadn(const float *p, int n) { return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p); }
static inline void vstoren(float *p, vf v, int n) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v); }
static inline vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
static inline vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
static inline vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
static inline vf vdiv(vf a, vf b) { return _mm512_div_ps(a, b); }
static inline vf vmin(vf a, vf b) { return _mm512_min_ps(a, b); }
static inline vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
static inline vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
static inline vf vnmadd(vf a, vf b, vf c) { return _mm512_fnmadd_ps(a, b, c); }
static inline vf vsqrt(vf a) { return _mm512_sqrt_ps(a); }
static inline float vsum(vf v) { return _mm512_reduce_add_ps(v); }
static inline vf vround(vf a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vf vpow2i(vf n) {  // 2^n for integral n in [-126, 127]
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}
static inline void vtranspose(vf r[VL]) {  // 32-bit pairs, 64-bit pairs, then 128-bit lanes twice
  vf t[VL];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
    __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
  }
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
  }
}
#elif defined(ROAF_ISA_AVX2)
#include <immintrin.h>
#define ROAF_SUFFIX(name) ROAF_CAT(name, avx2)
#define ROAF_ISA_NAME "avx2"
#define VL 8
typedef __m256 vf;
static const int32_t roaf_tail_mask[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
static inline __m256i tail_mask(int n) { return _mm256_loadu_si256((const __m256i *)(roaf_tail_mask + 8 - n)); }
static inline vf vzero(void) { return _mm256_setzero_ps(); }
static inline vf vset1(float x) { return _mm256_set1_ps(x); }
static inline vf vload(const float *p) { return _mm256_loadu_ps(p); }
static inline void vstore(float *p, vf v) { _mm256_storeu_ps(p, v); }
static inline vf vloadn(const float *p, int n) { return _mm256_maskload_ps(p, tail_mask(n)); }
static inline void vstoren(float *p, vf v, int n) { _mm256_maskstore_ps(p, tail_mask(n), v); }
static inline vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
static inline vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
static inline vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
static inline vf vdiv(vf a, vf b) { return _mm256_div_ps(a, b); }
static inline vf vmin(vf a, vf b) { return _mm256_min_ps(a, b); }
static inline vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
static inline vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
static inline vf vnmadd(vf a, vf b, vf c) { return _mm256_fnmadd_ps(a, b, c); }
static inline vf vsqrt(vf a) { return _mm256_sqrt_ps(a); }
static inline float vsum(vf v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
static inline vf vround(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline vf vpow2i(vf n) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}
static inline void vtranspose(vf r[VL]) { transpose8x8(r); }
#elif defined(ROAF_ISA_SIMD128)
// WebAssembly 128-bit SIMD (clang -msimd128). Baseline wasm SIMD has no fused multiply-add: vfma and vnmadd
// round the product before the sum, so results differ from the FMA paths by a rounding per multiply-add
// (docs/wasm.md states the tolerances). vmin/vmax are the "pseudo" min/max (a < b ? a : b), like the x86
// instructions and the portable C: a NaN first operand gives the second, and V8 compiles them to one minps.
#include <wasm_simd128.h>
#define ROAF_SUFFIX(name) ROAF_CAT(name, simd128)
#define ROAF_ISA_NAME "simd128"
#define VL 4
typedef v128_t vf;
static inline vf vzero(void) { return wasm_f32x4_splat(0.0f); }
static inline vf vset1(float x) { return wasm_f32x4_splat(x); }
static inline vf vload(const float *p) { return wasm_v128_load(p); }
static inline void vstore(float *p, vf v) { wasm_v128_store(p, v); }
static inline vf vloadn(const float *p, int n) {
  float t[VL] = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int l = 0; l < n; l++) t[l] = p[l];
  return wasm_v128_load(t);
}
static inline void vstoren(float *p, vf v, int n) {
  float t[VL];
  wasm_v128_store(t, v);
  for (int l = 0; l < n; l++) p[l] = t[l];
}
static inline vf vadd(vf a, vf b) { return wasm_f32x4_add(a, b); }
static inline vf vsub(vf a, vf b) { return wasm_f32x4_sub(a, b); }
static inline vf vmul(vf a, vf b) { return wasm_f32x4_mul(a, b); }
static inline vf vdiv(vf a, vf b) { return wasm_f32x4_div(a, b); }
static inline vf vmin(vf a, vf b) { return wasm_f32x4_pmin(b, a); }  // pmin(b, a) = a < b ? a : b
static inline vf vmax(vf a, vf b) { return wasm_f32x4_pmax(b, a); }  // pmax(b, a) = b < a ? a : b
static inline vf vfma(vf a, vf b, vf c) { return wasm_f32x4_add(wasm_f32x4_mul(a, b), c); }
static inline vf vnmadd(vf a, vf b, vf c) { return wasm_f32x4_sub(c, wasm_f32x4_mul(a, b)); }
static inline vf vsqrt(vf a) { return wasm_f32x4_sqrt(a); }
static inline float vsum(vf v) {  // the portable C's order: (x0 + x2) + (x1 + x3)
  vf s = wasm_f32x4_add(v, wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
  return wasm_f32x4_extract_lane(s, 0) + wasm_f32x4_extract_lane(s, 1);
}
static inline vf vround(vf a) { return wasm_f32x4_nearest(a); }
static inline vf vpow2i(vf n) {  // 2^n for integral n in [-126, 127]
  return wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23);
}
static inline void vtranspose(vf r[VL]) {  // interleave 32-bit lanes, then 64-bit halves
  vf t0 = wasm_i32x4_shuffle(r[0], r[1], 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(r[0], r[1], 2, 6, 3, 7);
  vf t2 = wasm_i32x4_shuffle(r[2], r[3], 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(r[2], r[3], 2, 6, 3, 7);
  r[0] = wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5);
  r[1] = wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7);
  r[2] = wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5);
  r[3] = wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7);
}
#else
// Portable C: a 4-lane struct; loops the compiler can vectorise on any target.
#define ROAF_SUFFIX(name) ROAF_CAT(name, portable)
#define ROAF_ISA_NAME "portable"
#define ROAF_PORTABLE 1
#define VL 4
typedef struct {
  float x[VL];
} vf;
#define VF_MAP1(expr)                           \
  vf r;                                         \
  for (int l = 0; l < VL; l++) r.x[l] = (expr); \
  return r
static inline vf vzero(void) { VF_MAP1(0.0f); }
static inline vf vset1(float s) { VF_MAP1(s); }
static inline vf vload(const float *p) { VF_MAP1(p[l]); }
static inline void vstore(float *p, vf v) {
  for (int l = 0; l < VL; l++) p[l] = v.x[l];
}
static inline vf vloadn(const float *p, int n) { VF_MAP1(l < n ? p[l] : 0.0f); }
static inline void vstoren(float *p, vf v, int n) {
  for (int l = 0; l < n; l++) p[l] = v.x[l];
}
static inline vf vadd(vf a, vf b) { VF_MAP1(a.x[l] + b.x[l]); }
static inline vf vsub(vf a, vf b) { VF_MAP1(a.x[l] - b.x[l]); }
static inline vf vmul(vf a, vf b) { VF_MAP1(a.x[l] * b.x[l]); }
static inline vf vdiv(vf a, vf b) { VF_MAP1(a.x[l] / b.x[l]); }
static inline vf vmin(vf a, vf b) { VF_MAP1(a.x[l] < b.x[l] ? a.x[l] : b.x[l]); }
static inline vf vmax(vf a, vf b) { VF_MAP1(a.x[l] > b.x[l] ? a.x[l] : b.x[l]); }
static inline vf vfma(vf a, vf b, vf c) { VF_MAP1(a.x[l] * b.x[l] + c.x[l]); }
static inline vf vnmadd(vf a, vf b, vf c) { VF_MAP1(c.x[l] - a.x[l] * b.x[l]); }
static inline vf vsqrt(vf a) { VF_MAP1(sqrtf(a.x[l])); }
static inline float vsum(vf v) { return (v.x[0] + v.x[2]) + (v.x[1] + v.x[3]); }
static inline vf vexp(vf a) { VF_MAP1(expf(a.x[l])); }
static inline vf vtanh(vf a) { VF_MAP1(tanhf(a.x[l])); }
static inline vf vsigmoid(vf a) { VF_MAP1(1.0f / (1.0f + expf(-a.x[l]))); }
static inline void vtranspose(vf r[VL]) {
  for (int i = 0; i < VL; i++)
    for (int j = i + 1; j < VL; j++) {
      float t = r[i].x[j];
      r[i].x[j] = r[j].x[i];
      r[j].x[i] = t;
    }
}
#endif

#ifndef ROAF_PORTABLE
/** exp(x): Cody-Waite range reduction x = n ln2 + r, degree-6 polynomial for e^r (Cephes expf). */
static inline vf vexp(vf x) {
  x = vmin(vmax(x, vset1(-87.0f)), vset1(88.0f));
  vf n = vround(vmul(x, vset1(1.44269504088896341f)));
  vf r = vnmadd(n, vset1(0.693359375f), x);
  r = vnmadd(n, vset1(-2.12194440e-4f), r);
  vf p = vset1(1.9875691500e-4f);
  p = vfma(p, r, vset1(1.3981999507e-3f));
  p = vfma(p, r, vset1(8.3334519073e-3f));
  p = vfma(p, r, vset1(4.1665795894e-2f));
  p = vfma(p, r, vset1(1.6666665459e-1f));
  p = vfma(p, r, vset1(5.0000001201e-1f));
  p = vfma(p, vmul(r, r), vadd(r, vset1(1.0f)));
  return vmul(p, vpow2i(n));
}

/** tanh(x): odd/even rational minimax approximation on [-9, 9] (as in Eigen); saturates to ±1 beyond. */
static inline vf vtanh(vf x) {
  x = vmin(vmax(x, vset1(-7.99881172180175781f)), vset1(7.99881172180175781f));
  vf x2 = vmul(x, x);
  vf p = vset1(-2.76076847742355e-16f);
  p = vfma(p, x2, vset1(2.00018790482477e-13f));
  p = vfma(p, x2, vset1(-8.60467152213735e-11f));
  p = vfma(p, x2, vset1(5.12229709037114e-08f));
  p = vfma(p, x2, vset1(1.48572235717979e-05f));
  p = vfma(p, x2, vset1(6.37261928875436e-04f));
  p = vfma(p, x2, vset1(4.89352455891786e-03f));
  p = vmul(p, x);
  vf q = vset1(1.19825839466702e-06f);
  q = vfma(q, x2, vset1(1.18534705686654e-04f));
  q = vfma(q, x2, vset1(2.26843463243900e-03f));
  q = vfma(q, x2, vset1(4.89352518554385e-03f));
  return vdiv(p, q);
}

/** sigmoid(x) = 1 / (1 + exp(-x)). */
static inline vf vsigmoid(vf x) { return vdiv(vset1(1.0f), vadd(vset1(1.0f), vexp(vmul(x, vset1(-1.0f))))); }
#endif

#endif
