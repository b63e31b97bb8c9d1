#!/usr/bin/env python3
"""Independent numpy reference for the QuantLens number formats (test/unit/quant-numpy.test.ts).

Written from the format definitions, not from the TypeScript: whole-array numpy (np.rint = round half to even,
np.frexp for exponents, np.float16 for fp16 scales, zero-padding for partial groups, argsort/argmin for
selections, a dense Sylvester matrix for the Hadamard rotation).

Usage: numpy-ref.py DIR   with DIR/w.bin (float32 LE, rows*cols, row-major [out, in]) and DIR/spec.json
{"rows", "cols", "ids": [...]}; writes DIR/out-<i>.bin (float32 dequantized values) for every id.
"""
import json
import re
import statistics
import sys

import numpy as np

ELEMS = {"e4m3": (4, 3, 448.0), "e5m2": (5, 2, 57344.0), "e3m2": (3, 2, 28.0), "e2m3": (2, 3, 7.5), "e2m1": (2, 1, 6.0)}
EMAX = {"e4m3": 8, "e5m2": 15, "e3m2": 4, "e2m3": 2, "e2m1": 2}
MX = {"mxfp4": "e2m1", "mxfp6_e3m2": "e3m2", "mxfp6_e2m3": "e2m3", "mxfp8_e4m3": "e4m3", "mxfp8_e5m2": "e5m2", "mxint8": "int8"}
NF4 = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                0.7229568362236023, 1.0], dtype=np.float32).astype(np.float64)


def nf_book(k):
    if k == 4:
        return NF4
    n = 2 ** k
    off = 0.5 * ((1 - 1 / (2 * (n - 1))) + (1 - 1 / (2 * n)))
    inv = statistics.NormalDist().inv_cdf
    pos = [inv(p) for p in np.linspace(off, 0.5, n // 2 + 1)[:-1]]
    neg = [-inv(p) for p in np.linspace(off, 0.5, n // 2)[:-1]]
    v = np.sort(np.array(pos + [0.0] + neg))
    return (v / v.max()).astype(np.float32).astype(np.float64)


def fp16(x):
    return np.asarray(x, dtype=np.float64).astype(np.float16).astype(np.float64)


def mf_round(x, name):
    eb, mb, maxv = ELEMS[name]
    bias = 2 ** (eb - 1) - 1
    a = np.minimum(np.abs(x), maxv)
    _, e = np.frexp(a)  # a = m·2^e, m in [0.5, 1) → floor(log2 a) = e − 1
    e = np.maximum(e - 1, 1 - bias)
    q = np.ldexp(1.0, e - mb)
    return np.sign(x) * np.rint(a / q) * q


def blocks(W, g):
    rows, cols = W.shape
    nb = -(-cols // g)
    P = np.zeros((rows, nb * g))
    P[:, :cols] = W
    return P.reshape(rows, nb, g)


def unblock(B, cols):
    return B.reshape(B.shape[0], -1)[:, :cols]


def safe_div(a, s):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s > 0, a / np.where(s > 0, s, 1), 0.0)


def q_int(W, bits, g, sym):
    B = blocks(W, g)
    if sym:
        qmax = 2 ** (bits - 1) - 1
        s = fp16(np.abs(B).max(axis=2, keepdims=True) / qmax)
        q = np.clip(np.rint(safe_div(B, s)), -qmax - 1, qmax)
        return unblock(q * s, W.shape[1])
    qmax = 2 ** bits - 1
    mn = np.minimum(B.min(axis=2, keepdims=True), 0)
    mx = np.maximum(B.max(axis=2, keepdims=True), 0)
    s = fp16((mx - mn) / qmax)
    z = np.clip(np.rint(safe_div(-mn, s)), 0, qmax)
    q = np.clip(np.rint(safe_div(B, s)) + z, 0, qmax)
    return unblock((q - z) * s, W.shape[1])


def q_nf(W, k, g):
    book = nf_book(k)
    B = blocks(W, g)
    s = fp16(np.abs(B).max(axis=2, keepdims=True))
    x = safe_div(B, s)
    idx = np.argmin(np.abs(x[..., None] - book), axis=-1)  # first minimum: ties go to the lower index
    return unblock(book[idx] * s, W.shape[1])


def q_fp(W, name, scaling):
    maxv = ELEMS[name][2]
    if scaling == "tensor":
        s = np.float64(np.float32(np.abs(W).max() / maxv))
        return mf_round(safe_div(W, s), name) * s
    if scaling == "channel":
        s = np.abs(W).max(axis=1, keepdims=True).astype(np.float64) / maxv
        s = s.astype(np.float32).astype(np.float64)
        return mf_round(safe_div(W, s), name) * s
    B = blocks(W, scaling)
    s = fp16(np.abs(B).max(axis=2, keepdims=True) / maxv)
    return unblock(mf_round(safe_div(B, s), name) * s, W.shape[1])


def q_mx(W, elem):
    B = blocks(W, 32)
    amax = np.abs(B).max(axis=2, keepdims=True)
    _, e = np.frexp(amax)
    emax = 0 if elem == "int8" else EMAX[elem]
    X = np.where(amax > 0, np.ldexp(1.0, np.clip(e - 1 - emax, -127, 127)), 0.0)
    if elem == "int8":
        q = np.clip(np.rint(safe_div(B, X) * 64), -128, 127)
        return unblock(q / 64 * X, W.shape[1])
    return unblock(mf_round(safe_div(B, X), elem) * X, W.shape[1])


def q_nvfp4(W):
    st = np.float64(np.float32(np.abs(W).max() / (448 * 6)))
    B = blocks(W, 16)
    sb = mf_round(safe_div(np.abs(B).max(axis=2, keepdims=True) / 6, st), "e4m3")
    s = sb * st
    return unblock(mf_round(safe_div(B, s), "e2m1") * s, W.shape[1])


def q_bfp(W, m, g):
    B = blocks(W, g)
    amax = np.abs(B).max(axis=2, keepdims=True)
    _, e = np.frexp(amax)
    step = np.where(amax > 0, np.ldexp(1.0, np.clip(e - 1, -127, 127) - (m - 2)), 0.0)
    mmax = 2 ** (m - 1) - 1
    return unblock(np.clip(np.rint(safe_div(B, step)), -mmax, mmax) * step, W.shape[1])


def base(id):
    """(function W → deq, block length for +ol (None: whole row))."""
    if m := re.fullmatch(r"int(\d+)_(?:ch|g(\d+))_(sym|asym)", id):
        g = int(m[2]) if m[2] else None
        return (lambda W: q_int(W, int(m[1]), g or W.shape[1], m[3] == "sym")), g
    if m := re.fullmatch(r"nf([34])_g(\d+)", id):
        return (lambda W: q_nf(W, int(m[1]), int(m[2]))), int(m[2])
    if m := re.fullmatch(r"fp\d_(e\dm\d)(?:_(ch|g\d+))?", id):
        scaling = "tensor" if not m[2] else "channel" if m[2] == "ch" else int(m[2][1:])
        return (lambda W: q_fp(W, m[1], scaling)), (scaling if isinstance(scaling, int) else None)
    if id in MX:
        return (lambda W: q_mx(W, MX[id])), 32
    if id == "nvfp4":
        return q_nvfp4, 16
    if m := re.fullmatch(r"bfp(\d+)_b(\d+)", id):
        return (lambda W: q_bfp(W, int(m[1]), int(m[2]))), int(m[2])
    raise ValueError(id)


def with_outliers(fn, g, k):
    def run(W):
        rows, cols = W.shape
        b = g or cols
        nb = -(-cols // b)
        A = -np.ones((rows, nb * b))  # padding sorts last and is never kept
        A[:, :cols] = np.abs(W)
        order = np.argsort(-A.reshape(rows, nb, b), axis=2, kind="stable")[:, :, :k]
        flat = (order + (np.arange(nb) * b)[None, :, None]).reshape(rows, -1)
        keep = np.zeros((rows, nb * b), dtype=bool)
        np.put_along_axis(keep, flat, True, axis=1)
        keep = keep[:, :cols]
        D = fn(np.where(keep, 0.0, W))
        return np.where(keep, fp16(W), D)
    return run


def with_reorder(fn):
    def run(W):
        perm = np.argsort(-np.abs(W).max(axis=0), kind="stable")
        out = np.empty_like(W, dtype=np.float64)
        out[:, perm] = fn(W[:, perm])
        return out
    return run


def with_hadamard(fn, h):
    H = np.array([[1.0]])
    while H.shape[0] < h:
        H = np.block([[H, H], [H, -H]])
    H /= np.sqrt(h)

    def rot(W):
        rows, cols = W.shape
        full = cols - cols % h
        R = np.array(W, dtype=np.float64)
        R[:, :full] = (R[:, :full].reshape(rows, -1, h) @ H).reshape(rows, full)
        return R

    def run(W):
        D = fn(rot(W).astype(np.float32).astype(np.float64)).astype(np.float32)
        return rot(D)
    return run


def format_fn(id):
    base_id, *mods = id.split("+")
    fn, g = base(base_id)
    for mod in mods:
        if m := re.fullmatch(r"ol(\d+)", mod):
            fn = with_outliers(fn, g, int(m[1]))
        elif mod == "reorder":
            fn = with_reorder(fn)
        elif m := re.fullmatch(r"had(\d+)", mod):
            fn = with_hadamard(fn, int(m[1]))
        else:
            raise ValueError(id)
    return fn


def main():
    d = sys.argv[1]
    spec = json.load(open(f"{d}/spec.json"))
    W = np.fromfile(f"{d}/w.bin", dtype="<f4").reshape(spec["rows"], spec["cols"]).astype(np.float64)
    for i, id in enumerate(spec["ids"]):
        format_fn(id)(W).astype("<f4").tofile(f"{d}/out-{i}.bin")


if __name__ == "__main__":
    main()
