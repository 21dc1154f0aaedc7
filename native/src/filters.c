// Applying a filter O to rows: y = betaY y + alpha (O x) or (Oᵀ x). A dense filter is a matrix product; a
// permutation with signs, (O x)[i] = s_i x[perm_i], and the identity cost O(N) per row.

#include "kernels_internal.h"

void k_apply_filter(const roaf_filter *f, int transpose, idx B, float alpha, const float *x, float betaY, float *y) {
  idx N = f->n;
  if (f->kind == FILTER_DENSE) {
    // Rows are vectors: Y = X Oᵀ, and the transposed filter Y = X O.
    k_gemm(0, !transpose, B, N, N, alpha, x, N, f->matrix, N, betaY, y, N);
    return;
  }
  filter_rows(f, transpose, B, N, alpha, x, betaY, y);
}
