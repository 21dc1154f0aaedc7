// The table of one instruction set's kernels, roaf_kernels_avx512, roaf_kernels_avx2 or roaf_kernels_portable
// (this file, like every kernel file, is compiled once per instruction set): what the addon dispatches to.
// kernels_internal.h lists the files that hold them.

#include "kernels_internal.h"

const roaf_kernels ROAF_SUFFIX(roaf_kernels) = {
    .name = ROAF_ISA_NAME,
    .fma_peak = k_fma_peak,
    .gemm = k_gemm,
    .gemm_bf16 = k_gemm_bf16,
    .bf16_hardware = k_bf16_hardware,
    .gemm_packed_once = k_gemm_packed_once,
    .add_row_vector = k_add_row_vector,
    .sum_rows = k_sum_rows,
    .tanh = k_tanh,
    .tanh_backward = k_tanh_backward,
    .sum_squares = k_sum_squares,
    .scale = k_scale,
    .axpy = k_axpy,
    .apply_filter = k_apply_filter,
    .roaf_layer_forward = k_roaf_layer_forward,
    .roaf_layer_backward = k_roaf_layer_backward,
    .roaf_mlp_forward = k_roaf_mlp_forward,
    .roaf_mlp_backward = k_roaf_mlp_backward,
    .roaf_mlp_forward_bf16 = k_roaf_mlp_forward_bf16,
    .roaf_mlp_backward_bf16 = k_roaf_mlp_backward_bf16,
    .roaf_cell_forward = k_roaf_cell_forward,
    .roaf_cell_backward = k_roaf_cell_backward,
    .roaf_cell_forward_bf16 = k_roaf_cell_forward_bf16,
    .roaf_cell_backward_bf16 = k_roaf_cell_backward_bf16,
    .lstm_forward = k_lstm_forward,
    .lstm_backward = k_lstm_backward,
    .gru_forward = k_gru_forward,
    .gru_backward = k_gru_backward,
    .softmax_cross_entropy = k_softmax_cross_entropy,
    .squared_error = k_squared_error,
    .adam_update = k_adam_update,
    .sgd_update = k_sgd_update,
    .orthogonal_from_qr = k_orthogonal_from_qr,
};
