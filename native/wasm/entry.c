// The WebAssembly module's entry layer (built by scripts/build-wasm.mjs into native/wasm/roaf.wasm; docs/wasm.md):
// the kernels of native/src compiled once with ROAF_ISA_SIMD128 and ROAF_SINGLE_THREAD, exported to
// src/backend/wasm.ts as plain functions on pointers into linear memory. The per-kernel exports are generated
// from the kernel table (wasm_kernels.inc); this file adds what the module itself needs: its kernel table's
// fingerprint, buffers (malloc/free, exported by the linker), the measured arithmetic peak.

#include <stdint.h>
#include <stdlib.h>

#include "parallel.h"
#include "roaf_native.h"

extern const roaf_kernels roaf_kernels_simd128;

// src/backend/wasm.ts writes filter lists as arrays of this struct: 7 i32 fields (kind, n, matrix, perm, signs,
// inversePerm, inverseSigns).
_Static_assert(sizeof(roaf_filter) == 28, "roaf_filter must be 28 bytes on wasm32");
_Static_assert(sizeof(idx) == 4, "idx must be i32 on wasm32");

/** One filter operand from its four values, as the N-API glue reads it (data: the matrix or the signs). */
static inline roaf_filter wasm_filter(int kind, int n, float *data, int32_t *perm) {
  roaf_filter f = {.kind = kind, .n = n};
  if (kind == FILTER_DENSE) f.matrix = data;
  else if (kind == FILTER_PERMUTATION) {
    f.signs = data;
    f.perm = perm;
  }
  return f;
}

#include "wasm_kernels.inc"

/** The fingerprint of the kernel table the exports were generated from: a NUL-terminated string. */
__attribute__((export_name("kernelTableId"))) const char *wasm_kernel_table_id(void) { return ROAF_KERNEL_TABLE_ID; }

/** The instruction set of the kernels ("simd128"): a NUL-terminated string. */
__attribute__((export_name("isa"))) const char *wasm_isa(void) { return roaf_kernels_simd128.name; }

/** FLOPS of the widest multiply-add (here a multiply then an add) sustained for about `seconds`. */
__attribute__((export_name("fmaPeak"))) double wasm_fma_peak(double seconds) {
  return roaf_kernels_simd128.fma_peak(seconds);
}
