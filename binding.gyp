# Builds roaf's native backend (build/Release/roaf_native.node): run by `npm install` through
# scripts/build-native.mjs. kernels.c is compiled once per instruction set, each copy in its own static
# library with its own compiler flags; addon.c picks one at run time (src/backend/native.ts: ROAF_ISA).
{
  "target_defaults": {
    "include_dirs": ["native/include"],
    "cflags": ["-O3", "-std=gnu11", "-fPIC", "-fno-math-errno", "-Wall", "-Wextra", "-Wno-unused-parameter"],
    "cflags!": ["-O2", "-O0"],
    "xcode_settings": {"OTHER_CFLAGS": ["-O3", "-std=gnu11", "-fno-math-errno"]},
  },
  "targets": [
    {
      "target_name": "roaf_kernels_portable",
      "type": "static_library",
      "sources": ["native/src/kernels.c"],
    },
    {
      "target_name": "roaf_native",
      "sources": ["native/src/addon.c", "native/src/pool.c"],
      "dependencies": ["roaf_kernels_portable"],
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
          "sources": ["native/src/kernels.c"],
          "defines": ["ROAF_ISA_AVX2"],
          "cflags": ["-mavx2", "-mfma"],
          "xcode_settings": {"OTHER_CFLAGS": ["-mavx2", "-mfma"]},
        },
        {
          "target_name": "roaf_kernels_avx512",
          "type": "static_library",
          "sources": ["native/src/kernels.c"],
          "defines": ["ROAF_ISA_AVX512"],
          "cflags": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma"],
          "xcode_settings": {"OTHER_CFLAGS": ["-mavx512f", "-mavx512dq", "-mavx512bw", "-mavx512vl", "-mavx2", "-mfma"]},
        },
      ],
    }],
  ],
}
