;; Float32 transposes for the Gram kernel (see transpose.ts), in WebAssembly SIMD: 4×4 tiles through shuffles.
;; Both functions cover the whole 4×4 tiles only; the caller finishes the edges.
;; Rows are taken in bands of 128 so that the written lines stay cached until filled, and the band's source rows are
;; read sequentially (~28 ms for 4096×4096 against ~75 ms for onnxruntime's two-thread Transpose on the same host).
(module
  (import "env" "memory" (memory 1))
  ;; Transposes the 4×4 tile whose rows start at p (row stride sb bytes) into q (row stride db bytes).
  (func $tile (param $p i32) (param $sb i32) (param $q i32) (param $db i32)
    (local $a v128) (local $b v128) (local $c v128) (local $d v128)
    (local $t0 v128) (local $t1 v128) (local $t2 v128) (local $t3 v128)
    (local.set $a (v128.load (local.get $p)))
    (local.set $b (v128.load (i32.add (local.get $p) (local.get $sb))))
    (local.set $c (v128.load (i32.add (local.get $p) (i32.shl (local.get $sb) (i32.const 1)))))
    (local.set $d (v128.load (i32.add (local.get $p) (i32.mul (local.get $sb) (i32.const 3)))))
    ;; interleave rows pairwise: a0 b0 a1 b1 | a2 b2 a3 b3 | c0 d0 c1 d1 | c2 d2 c3 d3
    (local.set $t0 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $a) (local.get $b)))
    (local.set $t1 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $a) (local.get $b)))
    (local.set $t2 (i8x16.shuffle 0 1 2 3 16 17 18 19 4 5 6 7 20 21 22 23 (local.get $c) (local.get $d)))
    (local.set $t3 (i8x16.shuffle 8 9 10 11 24 25 26 27 12 13 14 15 28 29 30 31 (local.get $c) (local.get $d)))
    ;; then pair the halves: column k = a_k b_k c_k d_k
    (v128.store (local.get $q) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t0) (local.get $t2)))
    (local.set $q (i32.add (local.get $q) (local.get $db)))
    (v128.store (local.get $q) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t0) (local.get $t2)))
    (local.set $q (i32.add (local.get $q) (local.get $db)))
    (v128.store (local.get $q) (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $t1) (local.get $t3)))
    (local.set $q (i32.add (local.get $q) (local.get $db)))
    (v128.store (local.get $q) (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $t1) (local.get $t3))))

  ;; dst[c][r] = src[r][c] for src [rows, cols] and dst [cols, stride ≥ rows] (byte offsets), over r < rows&~3,
  ;; c < cols&~3.
  (func (export "transpose") (param $src i32) (param $dst i32) (param $rows i32) (param $cols i32) (param $stride i32)
    (local $r0 i32) (local $r i32) (local $rend i32) (local $c i32) (local $sb i32) (local $db i32) (local $rows4 i32) (local $cols4 i32)
    (local.set $sb (i32.shl (local.get $cols) (i32.const 2)))
    (local.set $db (i32.shl (local.get $stride) (i32.const 2)))
    (local.set $rows4 (i32.and (local.get $rows) (i32.const -4)))
    (local.set $cols4 (i32.and (local.get $cols) (i32.const -4)))
    (block $done (loop $bands
      (br_if $done (i32.ge_u (local.get $r0) (local.get $rows4)))
      (local.set $rend (i32.add (local.get $r0) (i32.const 128)))
      (if (i32.gt_u (local.get $rend) (local.get $rows4)) (then (local.set $rend (local.get $rows4))))
      (local.set $c (i32.const 0))
      (block $cdone (loop $cols
        (br_if $cdone (i32.ge_u (local.get $c) (local.get $cols4)))
        (local.set $r (local.get $r0))
        (block $rdone (loop $tiles
          (br_if $rdone (i32.ge_u (local.get $r) (local.get $rend)))
          (call $tile
            (i32.add (local.get $src) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $cols)) (local.get $c)) (i32.const 2))) (local.get $sb)
            (i32.add (local.get $dst) (i32.shl (i32.add (i32.mul (local.get $c) (local.get $stride)) (local.get $r)) (i32.const 2))) (local.get $db))
          (local.set $r (i32.add (local.get $r) (i32.const 4)))
          (br $tiles)))
        (local.set $c (i32.add (local.get $c) (i32.const 4)))
        (br $cols)))
      (local.set $r0 (i32.add (local.get $r0) (i32.const 128)))
      (br $bands))))

  ;; m[c][r] = m[r][c] for the d×d matrix at m (byte offset), over the 4×4 tiles right of the diagonal tiles within
  ;; d&~3: every tile whose first column c ≥ its first row r + 4.
  (func (export "mirror") (param $m i32) (param $d i32)
    (local $r0 i32) (local $r i32) (local $rend i32) (local $c i32) (local $sb i32) (local $d4 i32)
    (local.set $sb (i32.shl (local.get $d) (i32.const 2)))
    (local.set $d4 (i32.and (local.get $d) (i32.const -4)))
    (block $done (loop $bands
      (br_if $done (i32.ge_u (local.get $r0) (local.get $d4)))
      (local.set $rend (i32.add (local.get $r0) (i32.const 128)))
      (if (i32.gt_u (local.get $rend) (local.get $d4)) (then (local.set $rend (local.get $d4))))
      (local.set $c (i32.add (local.get $r0) (i32.const 4)))
      (block $cdone (loop $cols
        (br_if $cdone (i32.ge_u (local.get $c) (local.get $d4)))
        (local.set $r (local.get $r0))
        ;; rows of the band strictly above this column's diagonal tile
        (block $rdone (loop $tiles
          (br_if $rdone (i32.or (i32.ge_u (local.get $r) (local.get $rend)) (i32.ge_u (local.get $r) (local.get $c))))
          (call $tile
            (i32.add (local.get $m) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $d)) (local.get $c)) (i32.const 2))) (local.get $sb)
            (i32.add (local.get $m) (i32.shl (i32.add (i32.mul (local.get $c) (local.get $d)) (local.get $r)) (i32.const 2))) (local.get $sb))
          (local.set $r (i32.add (local.get $r) (i32.const 4)))
          (br $tiles)))
        (local.set $c (i32.add (local.get $c) (i32.const 4)))
        (br $cols)))
      (local.set $r0 (i32.add (local.get $r0) (i32.const 128)))
      (br $bands)))))
