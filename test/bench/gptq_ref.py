#!/usr/bin/env python3
"""numpy reference GPTQ for the `gptq` benchmark (test/bench/gptq.bench.ts), written from the algorithm
(Frantar et al. 2022, "GPTQ", Algorithm 1), not from the TypeScript.

  H += λ·mean(diag H)·I (dead inputs, H_jj = 0, first get H_jj = 1 and zero weights)
  U = upper Cholesky factor of H⁻¹ (numpy: cholesky, inverse, cholesky — the reference's three steps)
  columns in blocks of B, no act-order; at the first column of every quantization group the grid (scale, zero)
  comes from the group's current (already updated) weights:
    asym: range widened to contain 0, scale = fp16((max − min)/(2^b − 1)), zero = clamp(rint(−min/scale), 0, 2^b − 1)
    sym:  scale = fp16(max|w|/(2^(b−1) − 1)), zero = 0, codes in [−2^(b−1), 2^(b−1) − 1]
  q = clamp(rint(w/scale) + zero), e = (w − (q − zero)·scale) / U_ii, W[:, i+1:end] −= e·U[i, i+1:end] inside the
  block, then W[:, end:] −= E·U[block, end:] (the lazy batch update).
The grid is computed from the weights as float32 (how the formats module sees them); everything else is float64.

Usage: gptq_ref.py DIR  with DIR/spec.json {"rows", "cols", "bits", "group" (0 = per channel), "sym", "block",
"damp"}, DIR/w.bin (float32 [rows, cols] row-major, output channels × inputs) and DIR/h.bin (float64 [cols, cols]).
Writes DIR/codes.bin (int32) and DIR/values.bin (float32) and prints {"seconds": {...}, "version"} as JSON.
"""
import json
import sys
import time

import numpy as np


def grid(block, bits, sym):
    g = block.astype(np.float32).astype(np.float64)
    if sym:
        qmax = 2 ** (bits - 1) - 1
        scale = (np.abs(g).max(axis=1) / qmax).astype(np.float16).astype(np.float64)
        return scale, np.zeros_like(scale), -qmax - 1, qmax
    qmax = 2 ** bits - 1
    lo = np.minimum(g.min(axis=1), 0)
    hi = np.maximum(g.max(axis=1), 0)
    scale = ((hi - lo) / qmax).astype(np.float16).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        zero = np.where(scale > 0, np.clip(np.rint(-lo / scale), 0, qmax), 0)
    return scale, zero, 0, qmax


def gptq(W, H, bits, group, sym, block, damp):
    rows, cols = W.shape
    W = W.astype(np.float64)
    H = H.copy()
    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H[np.diag_indices(cols)] += damp * np.mean(np.diag(H))
    t0 = time.perf_counter()
    L_inv = np.linalg.inv(np.linalg.cholesky(H))
    U = np.linalg.cholesky(L_inv.T @ L_inv).T
    t1 = time.perf_counter()
    group = group or cols
    codes = np.zeros((rows, cols), dtype=np.int32)
    values = np.zeros((rows, cols), dtype=np.float32)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        E = np.zeros((rows, i2 - i1))
        for i in range(i1, i2):
            if i % group == 0:
                scale, zero, qmin, qmax = grid(W[:, i:i + group], bits, sym)
            w = W[:, i]
            with np.errstate(divide="ignore", invalid="ignore"):
                q = np.where(scale > 0, np.rint(w / scale) + zero, zero)
            q = np.clip(q, qmin, qmax)
            deq = ((q - zero) * scale).astype(np.float32)
            codes[:, i] = q
            values[:, i] = deq
            e = (w - deq) / U[i, i]
            E[:, i - i1] = e
            W[:, i + 1:i2] -= np.outer(e, U[i, i + 1:i2])
        W[:, i2:] -= E @ U[i1:i2, i2:]
    return codes, values, {"factor": t1 - t0, "quantize": time.perf_counter() - t1}


def main():
    d = sys.argv[1]
    spec = json.load(open(f"{d}/spec.json"))
    rows, cols = spec["rows"], spec["cols"]
    W = np.fromfile(f"{d}/w.bin", dtype="<f4").reshape(rows, cols)
    H = np.fromfile(f"{d}/h.bin", dtype="<f8").reshape(cols, cols)
    t = time.perf_counter()
    codes, values, seconds = gptq(W, H, spec["bits"], spec["group"], spec["sym"], spec["block"], spec["damp"])
    seconds["total"] = time.perf_counter() - t
    codes.astype("<i4").tofile(f"{d}/codes.bin")
    values.astype("<f4").tofile(f"{d}/values.bin")
    print(json.dumps({"seconds": seconds, "version": np.__version__}))


if __name__ == "__main__":
    main()
