#!/usr/bin/env python3
"""numpy reference of QuantLens's data-free metrics, for the analysis benchmark (test/bench/analysis.bench.ts).

Written from the metric and format definitions (server/src/analysis/*.ts headers, the format descriptions), not
from the TypeScript: whole-array numpy, float64 arithmetic, np.rint = round half to even.

Per tensor ([out, in] = [rows, cols], groups along a row):
  stats: excess kurtosis, share of |w - mu_c| > k*sigma_c per output channel c, max|w|/sigma,
         super weights (first i <= 16 with a_i > 10*a_(i+1) among the 17 largest |w|, a_i > 50*median|w|)
  per format: relMse = sum (Q(w)-w)^2 / sum w^2, maxAbsErr, entropy of the stored codes (bits/weight)
Formats: int4_g128_asym (fp16 scale (max-min)/15 over the 0-widened range, zero = clip(rint(-min/scale), 0, 15),
codes q + zero) and mxfp4 (OCP MX v1.0: blocks of 32, scale 2^(floor(log2 amax) - 2), E2M1 elements saturating at 6,
codes = sign<<3 | E2M1 bit pattern).

Usage: datafree_ref.py FILE.safetensors [--formats int4_g128_asym,mxfp4] [--max-tensors N] [--sigma 6]
Prints one JSON object: per-tensor results and seconds spent in reading, stats and each format.
"""
import argparse
import json
import struct
import time

import numpy as np

DTYPES = {"F16": np.float16, "BF16": None, "F32": np.float32}


def tensors(path, limit):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    start = 8 + n
    items = [(k, v) for k, v in header.items() if k != "__metadata__" and len(v["shape"]) == 2]
    for name, v in items[:limit]:
        a, b = v["data_offsets"]
        rows, cols = v["shape"]
        w = np.fromfile(path, dtype=DTYPES[v["dtype"]], count=rows * cols, offset=start + a).reshape(rows, cols)
        yield name, w.astype(np.float32)


def entropy(codes):
    counts = np.bincount(codes.ravel().astype(np.int64) - int(codes.min()))
    p = counts[counts > 0] / codes.size
    return float(-(p * np.log2(p)).sum())


def stats(w, sigma):
    x = w.astype(np.float64)
    d = x - x.mean()
    m2 = np.mean(d * d)
    m4 = np.mean((d * d) ** 2)
    mu_c = x.mean(axis=1, keepdims=True)
    sd_c = x.std(axis=1, keepdims=True)
    outliers = int(np.count_nonzero(np.abs(x - mu_c) > sigma * sd_c))
    a = np.abs(x).ravel()
    top_idx = np.argpartition(a, -17)[-17:]
    top_idx = top_idx[np.argsort(-a[top_idx], kind="stable")]
    top = a[top_idx]
    median = float(np.median(a))
    supers = []
    for s in range(1, 17):
        if top[s - 1] > 10 * top[s]:
            if top[s - 1] > 50 * median:
                supers = [[int(i // w.shape[1]), int(i % w.shape[1])] for i in top_idx[:s]]
            break
    std = float(np.sqrt(m2))
    return {
        "kurtosis": float(m4 / (m2 * m2) - 3) if m2 > 0 else 0.0,
        "outlierShare": outliers / x.size,
        "maxOverStd": float(a.max() / std) if std > 0 else 0.0,
        "superWeights": supers,
    }


def fp16(x):
    return x.astype(np.float16).astype(np.float64)


def int4_g128_asym(w):
    rows, cols = w.shape
    g = 128
    pad = (-cols) % g
    x = np.pad(w.astype(np.float64), ((0, 0), (0, pad))).reshape(rows, -1, g)
    mn = np.minimum(x.min(axis=2, keepdims=True), 0)
    mx = np.maximum(x.max(axis=2, keepdims=True), 0)
    scale = fp16((mx - mn) / 15)
    inv = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale > 0)
    zero = np.clip(np.rint(-mn * inv), 0, 15)
    q = np.clip(np.rint(np.clip(x * inv, -zero, 15 - zero)), -zero, 15 - zero)
    deq = (q * scale).reshape(rows, -1)[:, :cols]
    codes = (q + zero).reshape(rows, -1)[:, :cols]
    return deq, codes


E2M1_CODE = {0.0: 0, 0.5: 1, 1.0: 2, 1.5: 3, 2.0: 4, 3.0: 5, 4.0: 6, 6.0: 7}


def mxfp4(w):
    rows, cols = w.shape
    g = 32
    pad = (-cols) % g
    x = np.pad(w.astype(np.float64), ((0, 0), (0, pad))).reshape(rows, -1, g)
    amax = np.abs(x).max(axis=2, keepdims=True)
    e = np.floor(np.log2(np.where(amax > 0, amax, 1.0)))
    # floor(log2) from the exponent field: log2 of a value just below a power of two may round up.
    e = np.where(np.exp2(e) > amax, e - 1, e)
    scale = np.where(amax > 0, np.maximum(np.exp2(e - 2), 2.0 ** -127), 0.0)
    inv = np.divide(1.0, scale, out=np.zeros_like(scale), where=scale > 0)
    v = x * inv
    a = np.minimum(np.abs(v), 6.0)
    q = np.where(a < 1, 0.5, np.exp2(np.floor(np.log2(np.maximum(a, 1.0)))) / 2)
    m = np.rint(a / q) * q
    deq = (np.copysign(m, v) * scale).reshape(rows, -1)[:, :cols]
    mags = np.array(sorted(E2M1_CODE))
    code = np.searchsorted(mags, m) + 8 * np.signbit(v)
    return deq, code.reshape(rows, -1)[:, :cols]


FORMATS = {"int4_g128_asym": int4_g128_asym, "mxfp4": mxfp4}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--formats", default="int4_g128_asym,mxfp4")
    ap.add_argument("--max-tensors", type=int, default=1 << 30)
    ap.add_argument("--sigma", type=float, default=6.0)
    args = ap.parse_args()
    ids = args.formats.split(",")
    seconds = {"read": 0.0, "stats": 0.0, **{i: 0.0 for i in ids}}
    out = []
    weights = 0
    t = time.perf_counter()
    for name, w in tensors(args.file, args.max_tensors):
        now = time.perf_counter()
        seconds["read"] += now - t
        t = now
        weights += w.size
        rec = {"name": name, "stats": stats(w, args.sigma), "errors": {}}
        now = time.perf_counter()
        seconds["stats"] += now - t
        t = now
        den = float(np.sum(w.astype(np.float64) ** 2))
        for i in ids:
            deq, codes = FORMATS[i](w)
            d = deq - w
            rec["errors"][i] = {
                "relMse": float(np.sum(d * d) / den) if den > 0 else 0.0,
                "maxAbsErr": float(np.abs(d).max()),
                "entropyBits": entropy(codes),
            }
            now = time.perf_counter()
            seconds[i] += now - t
            t = now
        out.append(rec)
    print(json.dumps({"weights": weights, "seconds": seconds, "tensors": out}))


if __name__ == "__main__":
    main()
