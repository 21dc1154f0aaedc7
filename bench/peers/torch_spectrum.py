#!/usr/bin/env python3
"""PyTorch peer of bench/spectrum.ts: one factor of the singular spectrum of a long Jacobian product, timed.

The computation is roaf's (src/diagnostics/product-spectrum.ts): carry an orthonormal frame through the
product, A = J_L ... J_1 = Q_L R_L ... R_1, by the QR of J_l Q_{l-1}, and keep the triangular product as
P = diag(e^s) M with rows of max-norm 1 (so that it neither under- nor overflows at any depth). In float64.
Two formulations, and the peer is the faster:

  geqrf-ormqr  the frame kept as LAPACK's Householder reflectors (torch.geqrf) and applied to the next factor
               with torch.ormqr (LAPACK's blocked dormqr): what roaf does, the frame never formed
  qr-matmul    the frame formed (torch.linalg.qr) and applied as a matrix product J @ Q

The triangular product is one matrix product with the row-scaled coefficients (full n^3, at GEMM speed).

Reads the factors from --factors (count x n x n float64, little-endian, row-major), runs the chain --repeats
times with torch.set_num_threads(k) for each k in --threads, and prints one JSON line per formulation and
thread count: the median milliseconds of one factor (the first factor of a chain, which has no frame to apply,
is not timed) and the largest and smallest log singular values of the product, which the harness checks
against roaf's. `--info` prints the versions.
"""

import argparse
import json
import statistics
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--info", action="store_true")
    parser.add_argument("--factors")
    parser.add_argument("--n", type=int)
    parser.add_argument("--count", type=int)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    import torch

    if args.info:
        print(json.dumps({"torch": torch.__version__, "numpy": np.__version__, "config": torch.__config__.parallel_info().split("\n")[0]}))
        return 0
    if args.factors is None or args.n is None or args.count is None:
        parser.error("--factors, --n and --count are required")
    n, count = args.n, args.count
    data = np.fromfile(args.factors, dtype="<f8")
    if data.size != count * n * n:
        print(f"torch_spectrum: {args.factors} holds {data.size} doubles, expected {count} x {n} x {n}", file=sys.stderr)
        return 2
    factors = [torch.from_numpy(data[i * n * n:(i + 1) * n * n].reshape(n, n).copy()) for i in range(count)]

    def scaled_rows(M):
        """M with rows scaled to max-norm 1, and the logs of the scales."""
        largest = M.abs().amax(dim=1)
        return M / largest[:, None], torch.log(largest)

    def multiply(R, M, s):
        """P <- R P in the scaled representation P = diag(e^s) M."""
        E = torch.log(R.abs()) + s[None, :]
        c = E.amax(dim=1)
        C = torch.sign(R) * torch.exp(E - c[:, None])
        M, t = scaled_rows(C @ M)
        return M, c + t

    def geqrf_ormqr(J, frame):
        """The frame as LAPACK's reflectors (a, tau), applied to J by dormqr; the new reflectors and R."""
        Z = J if frame is None else torch.ormqr(frame[0], frame[1], J, left=False, transpose=False)
        a, tau = torch.geqrf(Z)
        return (a, tau), torch.triu(a)

    def qr_matmul(J, Q):
        """The frame formed as Q and applied as a product; the new Q and R."""
        return torch.linalg.qr(J if Q is None else J @ Q)

    def run_chain(step, timings):
        """Pushes every factor through `step` (a formulation) and the triangular product, timing all but the first."""
        frame = M = s = None
        for index, J in enumerate(factors):
            J = J.clone()
            start = time.perf_counter()
            frame, R = step(J, frame)
            M, s = scaled_rows(R) if M is None else multiply(R, M, s)
            if index > 0:
                timings.append(time.perf_counter() - start)
        return M, s

    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for name, step in (("geqrf-ormqr", geqrf_ormqr), ("qr-matmul", qr_matmul)):
            timings = []
            run_chain(step, [])  # warm-up: the first calls allocate and pick kernels
            for _ in range(args.repeats):
                M, s = run_chain(step, timings)
            top = s.max()
            logs = torch.log(torch.linalg.svdvals(M * torch.exp(s - top)[:, None])) + top
            print(json.dumps({
                "formulation": name,
                "threads": threads,
                "ms_per_factor": 1000 * statistics.median(timings),
                "samples": len(timings),
                "log_sigma_max": float(logs.max()),
                "log_sigma_min": float(logs.min()),
            }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
