// ROAF steps on register tiles: what the MLP stack's layers (roaf_mlp.c) and the cell's time steps
// (roaf_cell.c) run on.
//
// A ROAF step's products are small (rows x N x N, N ~ 64-256), so instead of the general packed product they use
// one register tile (MR rows x 2 vectors) on operands read in place, and the step's elementwise work is done in
// the tile's epilogue while the results are in registers:
// - forward: Wᵀ and Oᵀ are packed interleaved (VL columns of each per panel), so a tile holds z = x Wᵀ and O x
//   for the same VL columns and its epilogue writes a = tanh(z + b) and y = beta a + alpha O x;
// - backward: gx = alpha gy O + gz W reads the rows of O and W (the k of the product) in place in the MLP, whose
//   layers each read their weights once, and packed once per call in column panels in the cell; the epilogue
//   writes gx and already the next step's gz = beta gx ⊙ (1 - a²);
// - the MLP's weight gradients gzᵀ x read both operands in place.
// Permutation filters are applied per row in O(N) after a step's tiles, identity ones inside the epilogue.

#include "kernels_internal.h"

/**
 * dst[k * SNR + off + c] = M[(j0 + c) * N + k] for c < width (zero where j0 + c >= N), k < N: `width` columns of
 * Mᵀ, transposed VL x VL blocks at a time in registers.
 */
static void pack_transposed(const float *M, idx N, idx j0, idx width, float *dst, idx off) {
  for (idx c0 = 0; c0 < width; c0 += VL) {
    int valid = (int)max_idx(0, min_idx(VL, N - j0 - c0));
    for (idx k0 = 0; k0 < N; k0 += VL) {
      int kw = (int)min_idx(VL, N - k0);
      vf r[VL];
      for (int c = 0; c < VL; c++) r[c] = c < valid ? loadw(M + (j0 + c0 + c) * N + k0, kw) : vzero();
      vtranspose(r);
      for (int k = 0; k < kw; k++) vstore(dst + (k0 + k) * SNR + off + c0, r[k]);
    }
  }
}

idx roaf_pack_forward(const float *W, const float *O, idx N, float *dst) {
  if (O != NULL) {
    idx panels = (N + VL - 1) / VL;
    for (idx p = 0; p < panels; p++) {
      pack_transposed(W, N, p * VL, VL, dst + p * N * SNR, 0);
      pack_transposed(O, N, p * VL, VL, dst + p * N * SNR, VL);
    }
    return panels;
  }
  idx panels = (N + SNR - 1) / SNR;
  for (idx p = 0; p < panels; p++) pack_transposed(W, N, p * SNR, SNR, dst + p * N * SNR, 0);
  return panels;
}

size_t roaf_packed_size(idx N) { return (size_t)(N * round_up(N, VL) * 2); }

void plan_add(prefetch_plan *pl, const void *p, idx floats) {
  if (p == NULL || floats <= 0) return;
  uintptr_t first = (uintptr_t)p / 64, last = ((uintptr_t)p + (uintptr_t)floats * sizeof(float) - 1) / 64;
  pl->start[pl->regions] = (const char *)(first * 64);
  pl->lines[pl->regions] = (idx)(last - first + 1);
  pl->regions++;
}

void plan_spread(prefetch_plan *pl, idx steps) {
  idx total = 0;
  for (int i = 0; i < pl->regions; i++) total += pl->lines[i];
  pl->interval = pl->countdown = max_idx(1, steps / max_idx(total, 1));
}

/** Issues the plan's next prefetch (tiles call it every pl->interval steps, counting in a register). */
static inline void plan_fire(prefetch_plan *pl) {
  if (pl->region >= pl->regions) return;
  const char *p = pl->start[pl->region] + pl->line * 64;
  prefetch_line(p);
  if (++pl->line == pl->lines[pl->region]) {
    pl->region++;
    pl->line = 0;
  }
}

/** Row pointers of a tile of mr < MR rows starting at `a` with row stride `ld`; rows past mr repeat the last. */
static inline __attribute__((always_inline)) void tile_rows(const float *ar[MR], const float *a, idx ld, idx mr) {
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) ar[i] = a + (i < mr ? i : mr - 1) * ld;
}

/**
 * acc[i][v] += Σ_k A[i, k] b_k[v] for k < K, with A[i, k] at a[i·si + k·sk] (full tiles, `fullRows`: one base
 * and two strides keep the registers free) or ar[i][k·sk] (edge tiles: rows past the last repeat it); b_k is
 * two vectors at b + k·ldb, masked to w0, w1 lanes unless `fullCols`. Counts the prefetch plan's steps in a
 * register and fires one prefetch every pl->interval steps.
 */
#define TILE_ACCUMULATE(fullRows, fullCols, a, ar, si, sk, K, b, ldb, w0, w1, acc, pl) \
  do {                                                                                 \
    idx cd_ = (pl)->countdown;                                                         \
    const float *bk_ = (b);                                                            \
    for (idx k = 0; k < (K); k++, bk_ += (ldb)) {                                      \
      if (--cd_ <= 0) {                                                                \
        cd_ = (pl)->interval;                                                          \
        plan_fire(pl);                                                                 \
      }                                                                                \
      vf b0 = (fullCols) ? vload(bk_) : loadw(bk_, (w0));                              \
      vf b1 = (fullCols) ? vload(bk_ + VL) : loadw(bk_ + VL, (w1));                    \
      _Pragma("GCC unroll 16") for (int i = 0; i < MR; i++) {                          \
        vf ai = vset1((fullRows) ? (a)[i * (si) + k * (sk)] : (ar)[i][k * (sk)]);      \
        acc[i][0] = vfma(ai, b0, acc[i][0]);                                           \
        acc[i][1] = vfma(ai, b1, acc[i][1]);                                           \
      }                                                                                \
    }                                                                                  \
    (pl)->countdown = cd_;                                                             \
  } while (0)

/**
 * Forward tile: rows [0, mr) of x (stride N) against one packed panel (N x SNR); writes a = tanh(z) and
 * y = beta a + alpha O x of the panel's columns. Dense panels hold [z | O x] for columns j0..j0+VL; the others
 * z for columns j0..j0+SNR (then O x is added here for an identity filter, after the tiles for a permutation).
 */
static inline __attribute__((always_inline)) void roaf_forward_tile(const roaf_forward_args *f, int dense, idx mr,
                                                                    const float *x, const float *panel, idx j0,
                                                                    float *a, float *y, prefetch_plan *pl) {
  idx N = f->N;
  const float *bias = f->bias, *u = f->u, *xd = f->xd;
  int identity = f->identity;
  const float *ar[MR];
  if (mr < MR) tile_rows(ar, x, N, mr);
  vf acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = vzero();
  if (mr == MR) TILE_ACCUMULATE(1, 1, x, ar, N, 1, N, panel, SNR, VL, VL, acc, pl);
  else TILE_ACCUMULATE(0, 1, x, ar, N, 1, N, panel, SNR, VL, VL, acc, pl);
  vf vbeta = vset1(f->beta), valpha = vset1(f->alpha);
  for (int v = 0; v < 2; v++) {
    idx j = j0 + v * VL;
    if (j >= N) break;
    int w = (int)min_idx(VL, N - j);
    vf bv = bias != NULL ? loadw(bias + j, w) : vzero(), uv = u != NULL ? loadw(u + j, w) : vzero();
    for (idx i = 0; i < mr; i++) {
      vf z = vadd(acc[i][v], bias != NULL ? bv : loadw(a + i * N + j, w));
      if (u != NULL) z = vfma(vset1(xd[i]), uv, z);
      vf av = vtanh(z);
      storew(a + i * N + j, av, w);
      vf yv = vmul(vbeta, av);
      if (dense) yv = vfma(valpha, acc[i][1], yv);
      else if (identity) yv = vfma(valpha, loadw(x + i * N + j, w), yv);
      storew(y + i * N + j, yv, w);
    }
    if (dense) break;
  }
}

idx forward_iterations(idx N, idx panels, idx rows) { return panels * ((rows + MR - 1) / MR) * N; }

idx backward_iterations(idx N, int dense, idx rows) {
  return ((N + SNR - 1) / SNR) * ((rows + MR - 1) / MR) * N * (dense ? 2 : 1);
}

void roaf_forward_rows(const roaf_forward_args *f, const roaf_filter *filter, int dense, idx rows, const float *packed,
                       idx panels, const float *x, float *a, float *y, prefetch_plan *pl) {
  idx N = f->N, width = dense ? VL : SNR;
  for (idx p = 0; p < panels; p++) {
    const float *panel = packed + p * N * SNR;
    for (idx i = 0; i < rows; i += MR) {
      idx mr = min_idx(MR, rows - i);
      roaf_forward_args fi = *f;
      if (fi.xd != NULL) fi.xd += i;
      if (dense) roaf_forward_tile(&fi, 1, mr, x + i * N, panel, p * width, a + i * N, y + i * N, pl);
      else roaf_forward_tile(&fi, 0, mr, x + i * N, panel, p * width, a + i * N, y + i * N, pl);
    }
  }
  if (filter->kind == FILTER_PERMUTATION && f->alpha != 0.0f) filter_rows(filter, 0, rows, N, f->alpha, x, 1.0f, y);
}

void backward_in_place(roaf_backward_args *f, const float *O, const float *W) {
  f->O = O;
  f->W = W;
  f->ld = f->N;
  f->panel = SNR;
}

size_t roaf_backward_packed_size(idx N) { return (size_t)(2 * N * round_up(N, SNR)); }

/**
 * Column panel p (columns p·SNR..) of the packed operands is O's rows then W's rows, SNR floats each, zero past
 * column N, so every tile streams one contiguous block instead of N rows a matrix row apart.
 */
void roaf_pack_backward(roaf_backward_args *f, const float *O, const float *W, float *dst) {
  idx N = f->N, parts = O != NULL ? 2 : 1;
  f->ld = SNR;
  f->panel = parts * N * SNR;
  for (idx j0 = 0; j0 < N; j0 += SNR) {
    float *panel = dst + (j0 / SNR) * f->panel;
    int w0 = (int)min_idx(VL, N - j0), w1 = (int)max_idx(0, min_idx(VL, N - j0 - VL));
    for (idx part = 0; part < parts; part++) {
      const float *M = part == 0 && O != NULL ? O : W;
      float *out = panel + part * N * SNR;
      for (idx k = 0; k < N; k++) {
        vstore(out + k * SNR, loadw(M + k * N + j0, w0));
        vstore(out + k * SNR + VL, w1 > 0 ? loadw(M + k * N + j0 + VL, w1) : vzero());
      }
    }
  }
  f->O = O != NULL ? dst : NULL;
  f->W = dst + (O != NULL ? N * SNR : 0);
}

/**
 * Backward tile: out[rows, j0..j0+SNR) (+)= alpha (gy O)[...] + (gz W)[...] for mr rows; the rows of O and W are
 * the k of the product, read where `f` says (`full`: all SNR columns exist, else loads are masked). The
 * epilogue adds alpha gy for an identity filter, writes out and, when `gzNext` is set, the next gz =
 * beta out ⊙ (1 - aNext²).
 */
static inline __attribute__((always_inline)) void roaf_backward_tile(const roaf_backward_args *f, int full, idx mr,
                                                                     const float *gy, const float *gz, idx j0,
                                                                     float *out, const float *aNext, float *gzNext,
                                                                     prefetch_plan *pl) {
  idx N = f->N;
  idx offset = (j0 / SNR) * f->panel, ld = f->ld;
  const float *O = f->O != NULL ? f->O + offset : NULL, *W = f->W + offset;
  int identity = f->identity, accumulate = f->accumulate;
  int w0 = full ? VL : (int)max_idx(0, min_idx(VL, N - j0)), w1 = full ? VL : (int)max_idx(0, min_idx(VL, N - j0 - VL));
  const float *ar[MR];
  vf acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = vzero();
  if (O != NULL) {
    if (mr < MR) tile_rows(ar, gy, N, mr);
    if (mr == MR) TILE_ACCUMULATE(1, full, gy, ar, N, 1, N, O, ld, w0, w1, acc, pl);
    else TILE_ACCUMULATE(0, full, gy, ar, N, 1, N, O, ld, w0, w1, acc, pl);
    vf valpha = vset1(f->alpha);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      acc[i][0] = vmul(acc[i][0], valpha);
      acc[i][1] = vmul(acc[i][1], valpha);
    }
  }
  if (mr < MR) tile_rows(ar, gz, N, mr);
  if (mr == MR) TILE_ACCUMULATE(1, full, gz, ar, N, 1, N, W, ld, w0, w1, acc, pl);
  else TILE_ACCUMULATE(0, full, gz, ar, N, 1, N, W, ld, w0, w1, acc, pl);
  vf valpha = vset1(f->alpha), vbeta = vset1(f->beta), one = vset1(1.0f);
  for (int v = 0; v < 2; v++) {
    int w = v == 0 ? w0 : w1;
    if (w <= 0) break;
    idx j = j0 + v * VL;
    for (idx i = 0; i < mr; i++) {
      vf g = acc[i][v];
      if (identity) g = vfma(valpha, loadw(gy + i * N + j, w), g);
      if (accumulate) g = vadd(g, loadw(out + i * N + j, w));
      storew(out + i * N + j, g, w);
      if (gzNext != NULL) {
        vf av = loadw(aNext + i * N + j, w);
        storew(gzNext + i * N + j, vmul(vmul(vbeta, g), vnmadd(av, av, one)), w);
      }
    }
  }
}

void roaf_gz_rows(idx rows, idx N, float beta, const float *gy, const float *a, float *gz) {
  vf vbeta = vset1(beta), one = vset1(1.0f);
  FOR_LANES(i, rows * N, w) {
    vf av = loadw(a + i, w);
    storew(gz + i, vmul(vmul(vbeta, loadw(gy + i, w)), vnmadd(av, av, one)), w);
  }
}

void row_squares(idx rows, idx N, const float *g, double *sq) {
  for (idx r = 0; r < rows; r++) {
    const float *row = g + r * N;
    double s[4] = {0.0, 0.0, 0.0, 0.0};
    idx j = 0;
    for (; j + 4 <= N; j += 4)
      for (int u = 0; u < 4; u++) s[u] += (double)row[j + u] * row[j + u];
    for (; j < N; j++) s[0] += (double)row[j] * row[j];
    sq[r] = (s[0] + s[1]) + (s[2] + s[3]);
  }
}

void roaf_backward_rows(const roaf_backward_args *f, const roaf_filter *filter, idx rows, const float *gy,
                        const float *gz, float *out, const float *aNext, float *gzNext, prefetch_plan *pl) {
  idx N = f->N;
  int permutation = filter->kind == FILTER_PERMUTATION && f->alpha != 0.0f;
  for (idx j = 0; j < N; j += SNR) {
    for (idx i = 0; i < rows; i += MR) {
      idx mr = min_idx(MR, rows - i);
      float *gzn = gzNext != NULL && !permutation ? gzNext + i * N : NULL;
      const float *an = gzn != NULL ? aNext + i * N : NULL;
      if (j + SNR <= N) roaf_backward_tile(f, 1, mr, gy + i * N, gz + i * N, j, out + i * N, an, gzn, pl);
      else roaf_backward_tile(f, 0, mr, gy + i * N, gz + i * N, j, out + i * N, an, gzn, pl);
    }
  }
  if (permutation) {
    filter_rows(filter, 1, rows, N, f->alpha, gy, 1.0f, out);
    if (gzNext != NULL) roaf_gz_rows(rows, N, f->beta, out, aNext, gzNext);
  }
}

/** gW[0:mr, j0..j0+SNR) += Σ_k gz[k, i0+i] x[k, j] over the B rows, gz and x read in place. */
static inline __attribute__((always_inline)) void weight_tile(idx B, idx N, int full, idx mr, const float *gz,
                                                              const float *x, idx j0, float *gW, prefetch_plan *pl) {
  int w0 = full ? VL : (int)max_idx(0, min_idx(VL, N - j0)), w1 = full ? VL : (int)max_idx(0, min_idx(VL, N - j0 - VL));
  vf acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = vzero();
  const float *ar[MR];
  if (mr < MR) {
    tile_rows(ar, gz, 1, mr);
    TILE_ACCUMULATE(0, full, gz, ar, 1, N, B, x + j0, N, w0, w1, acc, pl);
  } else {
    TILE_ACCUMULATE(1, full, gz, ar, 1, N, B, x + j0, N, w0, w1, acc, pl);
  }
  for (idx i = 0; i < mr; i++) {
    float *c = gW + i * N + j0;
    if (full) {
      vstore(c, vadd(vload(c), acc[i][0]));
      vstore(c + VL, vadd(vload(c + VL), acc[i][1]));
    } else {
      if (w0 > 0) storew(c, vadd(loadw(c, w0), acc[i][0]), w0);
      if (w1 > 0) storew(c + VL, vadd(loadw(c + VL, w1), acc[i][1]), w1);
    }
  }
}

void roaf_weight_tiles(idx B, idx N, const float *gz, const float *x, float *gW, prefetch_plan *pl) {
  for (idx i = 0; i < N; i += MR) {
    idx mr = min_idx(MR, N - i);
    for (idx j = 0; j < N; j += SNR) {
      if (j + SNR <= N && mr == MR) weight_tile(B, N, 1, MR, gz + i, x, j, gW + i * N, pl);
      else weight_tile(B, N, 0, mr, gz + i, x, j, gW + i * N, pl);
    }
  }
}

// ---- steps on bf16 products (the --precision bf16 cell and stack) ----

bf16_rows_args bf16_rows_setup(idx N, float alpha, float beta, const roaf_filter *f) {
  return (bf16_rows_args){.N = N,
                          .pairs = (N + 1) / 2,
                          .alpha = alpha,
                          .beta = beta,
                          .f = f,
                          .dense = f->kind == FILTER_DENSE && alpha != 0.0f,
                          .filterRows = f->kind != FILTER_DENSE && alpha != 0.0f,
                          .hw = k_bf16_hardware()};
}

/** rows x N of x rounded into pair words (row stride pairs), rows padded with zeros to a multiple of MR. */
static uint32_t *bf16_rows(int tid, idx rows, idx N, idx pairs, const float *x) {
  idx padded = round_up(rows, MR);
  uint32_t *w = (uint32_t *)roaf_scratch(tid, SCRATCH_WORK, (size_t)(padded * pairs));
  bf16_round_rows(rows, N, x, N, w, pairs);
  memset(w + rows * pairs, 0, (size_t)((padded - rows) * pairs) * sizeof(uint32_t));
  return w;
}

/**
 * Prefetches tile `part` of `parts`'s share of the rows the next step touches (f->next: fresh memory every step),
 * spread over the tiles of a block so that they do not stall the product.
 */
static inline void prefetch_share(const bf16_rows_args *f, idx n, idx part, idx parts) {
  idx lines = (n * (idx)sizeof(float) + 63) / 64, l0 = lines * part / parts, l1 = lines * (part + 1) / parts;
  for (int r = 0; r < 3; r++)
    if (f->next[r] != NULL)
      for (idx l = l0; l < l1; l++) prefetch_line((const char *)f->next[r] + l * 64);
}

void bf16_forward_rows(int tid, const bf16_rows_args *f, idx rows, const float *x, float *a, float *y) {
  idx N = f->N, pairs = f->pairs;
  const uint32_t *ax = bf16_rows(tid, rows, N, pairs, x);
  if (f->dense) {  // y = alpha O x, in float32; the tiles add beta a
    a_operand ao = {.p = x, .ld = N};
    gemm_packed(tid, &ao, rows, f->ob, f->alpha, 0.0f, y, N);
  }
  float xr[MR];
  float tile[MR * NR] __attribute__((aligned(64)));
  vf vbeta = vset1(f->beta);
  idx tiles = ((rows + MR - 1) / MR) * ((N + NR - 1) / NR), done = 0;
  for (idx i = 0; i < rows; i += MR) {
    idx mr = min_idx(MR, rows - i);
    if (f->ur != NULL)
      for (idx r = 0; r < mr; r++) xr[r] = bf16_round(f->xd[i + r]);
    for (idx j0 = 0; j0 < N; j0 += NR, done++) {
      idx nr = min_idx(NR, N - j0);
      prefetch_share(f, rows * N, done, tiles);
      bf16_tile(f->hw, pairs, ax + i * pairs, pairs, f->wp + j0 * pairs, tile);
      for (idx r = 0; r < mr; r++) {
        float *ar = a + (i + r) * N + j0, *yr = y + (i + r) * N + j0;
        for (idx jj = 0; jj < nr; jj += VL) {
          idx w = min_idx(VL, nr - jj);
          // z = acc + drive: the bias, plus x̃ ũ (an exact product: one rounding in all), or the drive in a
          vf drive = f->bias == NULL ? loadw(ar + jj, w) : loadw(f->bias + j0 + jj, w);
          if (f->ur != NULL) drive = vfma(vset1(xr[r]), loadw(f->ur + j0 + jj, w), drive);
          vf av = vtanh(vadd(vload(tile + r * NR + jj), drive));
          storew(ar + jj, av, w);
          vf yv = vmul(vbeta, av);
          if (f->dense) yv = vadd(yv, loadw(yr + jj, w));
          storew(yr + jj, yv, w);
        }
      }
    }
  }
  if (f->filterRows) filter_rows(f->f, 0, rows, N, f->alpha, x, 1.0f, y);
}

void bf16_backward_rows(int tid, const bf16_rows_args *f, idx rows, const float *gy, const float *gz, float *out,
                        int accumulate, const float *aNext, float *gzNext) {
  idx N = f->N, pairs = f->pairs;
  const uint32_t *ag = bf16_rows(tid, rows, N, pairs, gz);
  float tile[MR * NR] __attribute__((aligned(64)));
  idx tiles = ((rows + MR - 1) / MR) * ((N + NR - 1) / NR), done = 0;
  for (idx i = 0; i < rows; i += MR) {
    idx mr = min_idx(MR, rows - i);
    for (idx j0 = 0; j0 < N; j0 += NR, done++) {
      idx nr = min_idx(NR, N - j0);
      prefetch_share(f, rows * N, done, tiles);
      bf16_tile(f->hw, pairs, ag + i * pairs, pairs, f->wp + j0 * pairs, tile);
      for (idx r = 0; r < mr; r++) {
        float *o = out + (i + r) * N + j0;
        for (idx jj = 0; jj < nr; jj += VL) {
          idx w = min_idx(VL, nr - jj);
          vf g = vload(tile + r * NR + jj);
          if (accumulate) g = vadd(loadw(o + jj, w), g);
          storew(o + jj, g, w);
        }
      }
    }
  }
  if (f->dense) {  // out += alpha gy O, in float32
    a_operand ao = {.p = gy, .ld = N};
    gemm_packed(tid, &ao, rows, f->ob, f->alpha, 1.0f, out, N);
  } else if (f->filterRows) {
    filter_rows(f->f, 1, rows, N, f->alpha, gy, 1.0f, out);
  }
  if (gzNext != NULL) roaf_gz_rows(rows, N, f->beta, out, aNext, gzNext);
}
