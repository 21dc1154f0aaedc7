# Builds roaf's native backend (build/Release/roaf_native.node): run by `npm install` through
# scripts/build-native.mjs; docs/native.md describes the build. The kernel files are compiled once per
# instruction set, each copy in its own static library with its own compiler flags; addon.c picks one at run
# time (src/backend/native.ts: ROAF_ISA). The pool and the threading policy (pool.c, parallel.c) are compiled
# once. Warnings are errors (werror=0 turns that off: scripts/build-native.mjs retries so when a compiler
# newer than ours warns); the files of native/ other than addon.c are also held to -Wshadow -Wconversion.
{
  "variables": {
    "werror%": 1,
    "kernel_sources": [
      "native/src/elementwise.c",
      "native/src/filters.c",
      "native/src/fma_peak.c",
      "native/src/gemm.c",
      "native/src/gemm_bf16.c",
      "native/src/kernels.c",
      "native/src/lstm_gru.c",
      "native/src/optimizers.c",
      "native/src/qr.c",
      "native/src/roaf_cell.c",
      "native/src/roaf_layer.c",
      "native/src/roaf_mlp.c",
      "native/src/roaf_tiles.c",
      "native/src/spectrum.c",
    ],
    "strict_cflags": ["-Wshadow", "-Wconversion"],
  },
  "target_defaults": {
    "include_dirs": ["native/include"],
    "cflags": ["-O3", "-std=gnu11", "-fPIC", "-fno-math-errno", "-Wall", "-Wextra"],
    "cflags!": ["-O2", "-O0"],
    "xcode_settings": {"OTHER_CFLAGS": ["-O3", "-std=gnu11", "-fno-math-errno", "-Wall", "-Wextra"]},
    "conditions": [
      ["werror==1", {"cflags": ["-Werror"], "xcode_settings": {"GCC_TREAT_WARNINGS_AS_ERRORS": "YES"}}],
    ],
  },
  "targets": [
    {
      "target_name": "roaf_kernels_portable",
      "type": "static_library",
      "sources": ["<@(kernel_sources)"],
      "cflags": ["<@(strict_cflags)"],
    },
    {
      "target_name": "roaf_runtime",
      "type": "static_library",
      "sources": ["native/src/pool.c", "native/src/parallel.c"],
      "cflags": ["<@(strict_cflags)"],
    },
    {
      "target_name": "roaf_native",
      "sources": ["native/src/addon.c"],
      "dependencies": ["roaf_kernels_portable", "roaf_runtime"],
      "libraries": ["-lm", "-lpthread"],
      "conditions": [
        ["target_arch=='x64'", {"dependencies": ["roaf_kernels_avx2", "roaf_kernels_avx512"]}],
      ],
    },
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "roaf_kernels_avx2",
          "type": "static_library",
          "sources": ["<@(kernel_sources)"],
          "defines": ["ROAF_ISA_AVX2"],
          "cflags": ["<@(strict_cflags)", "-mavx2", "-mfma"],
          "xcode_settings": {"OTHER_CFLAGS": ["-mavx2", "-mfma"]},
        },
        {
          "target_name": "roaf_kernels_avx512",
          "type": "static_library",
          "sources": ["<@(kernel_sources)"],
          "defines": ["ROAF_ISA_AVX512"],
          "cflags": ["<@(strict_cflags)", "-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma"],
          "xcode_settings": {"OTHER_CFLAGS": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma"]},
        },
      ],
    }],
  ],
}
