;; Sampled-mode pre-pass over stored F16/BF16 weights (see half-scan.ts): for `rows` rows of `cols` 16-bit
;; patterns at `src` (cols a multiple of 16), writes per block of 16 the largest magnitude pattern among the
;; non-negative entries (u16 at `blk`, row-major) and among the negative ones (u16 at `blk` + rows·cols/8), and per
;; row Σw² (f64 at `sums`).
;; With `colmax` ≠ 0 it also keeps the running per-column maximum of the magnitude patterns there.
;; Magnitude patterns of finite halves order like their values, so maxima need no decoding. A pattern m becomes
;; its value as the float32 with bits m << shift, times mult (F16: 13 and 2^112, which also covers subnormals;
;; BF16: 16 and 1); squares are summed in float64.
(module
  (import "env" "memory" (memory 1))
  (func (export "scan") (param $src i32) (param $rows i32) (param $cols i32) (param $blk i32) (param $sums i32)
        (param $shift i32) (param $mult f32) (param $colmax i32)
    (local $r i32) (local $p i32) (local $end i32) (local $c i32)
    (local $v0 v128) (local $v1 v128) (local $m0 v128) (local $m1 v128) (local $s0 v128) (local $s1 v128)
    (local $pm v128) (local $nm v128) (local $t v128) (local $f v128) (local $d v128)
    (local $a0 v128) (local $a1 v128) (local $mask v128) (local $mv v128) (local $blkQ i32)
    (local.set $mask (v128.const i16x8 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff 0x7fff))
    (local.set $mv (f32x4.splat (local.get $mult)))
    (local.set $p (local.get $src))
    (local.set $blkQ (i32.add (local.get $blk) (i32.shr_u (i32.mul (local.get $rows) (local.get $cols)) (i32.const 3))))
    (block $done
      (loop $rowloop
        (br_if $done (i32.ge_u (local.get $r) (local.get $rows)))
        (local.set $a0 (v128.const i64x2 0 0))
        (local.set $a1 (v128.const i64x2 0 0))
        (local.set $end (i32.add (local.get $p) (i32.shl (local.get $cols) (i32.const 1))))
        (local.set $c (local.get $colmax))
        (block $rowdone
          (loop $blockloop
            (br_if $rowdone (i32.ge_u (local.get $p) (local.get $end)))
            (local.set $v0 (v128.load (local.get $p)))
            (local.set $v1 (v128.load offset=16 (local.get $p)))
            (local.set $m0 (v128.and (local.get $v0) (local.get $mask)))
            (local.set $m1 (v128.and (local.get $v1) (local.get $mask)))
            (local.set $s0 (i16x8.shr_s (local.get $v0) (i32.const 15)))
            (local.set $s1 (i16x8.shr_s (local.get $v1) (i32.const 15)))
            (local.set $pm (i16x8.max_u (v128.andnot (local.get $m0) (local.get $s0)) (v128.andnot (local.get $m1) (local.get $s1))))
            (local.set $nm (i16x8.max_u (v128.and (local.get $m0) (local.get $s0)) (v128.and (local.get $m1) (local.get $s1))))
            ;; horizontal max: lanes 0..3 of pm and nm side by side, then halving
            (local.set $t (i16x8.max_u
              (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (local.get $pm) (local.get $nm))
              (i8x16.shuffle 8 9 10 11 12 13 14 15 24 25 26 27 28 29 30 31 (local.get $pm) (local.get $nm))))
            (local.set $t (i16x8.max_u (local.get $t) (i8x16.shuffle 4 5 6 7 0 1 2 3 12 13 14 15 8 9 10 11 (local.get $t) (local.get $t))))
            (local.set $t (i16x8.max_u (local.get $t) (i8x16.shuffle 2 3 0 1 6 7 4 5 10 11 8 9 14 15 12 13 (local.get $t) (local.get $t))))
            (i32.store16 (local.get $blk) (i16x8.extract_lane_u 0 (local.get $t)))
            (i32.store16 (local.get $blkQ) (i16x8.extract_lane_u 4 (local.get $t)))
            (local.set $blk (i32.add (local.get $blk) (i32.const 2)))
            (local.set $blkQ (i32.add (local.get $blkQ) (i32.const 2)))
            (if (local.get $colmax) (then
              (v128.store (local.get $c) (i16x8.max_u (v128.load (local.get $c)) (local.get $m0)))
              (v128.store offset=16 (local.get $c) (i16x8.max_u (v128.load offset=16 (local.get $c)) (local.get $m1)))
              (local.set $c (i32.add (local.get $c) (i32.const 32)))))
            ;; squares in float64: the value is the pattern shifted into a float32, times mult
            (local.set $f (f32x4.mul (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $m0)) (local.get $shift)) (local.get $mv)))
            (local.set $d (f64x2.promote_low_f32x4 (local.get $f)))
            (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (local.get $d) (local.get $d))))
            (local.set $d (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $f) (local.get $f))))
            (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (local.get $d) (local.get $d))))
            (local.set $f (f32x4.mul (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $m0)) (local.get $shift)) (local.get $mv)))
            (local.set $d (f64x2.promote_low_f32x4 (local.get $f)))
            (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (local.get $d) (local.get $d))))
            (local.set $d (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $f) (local.get $f))))
            (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (local.get $d) (local.get $d))))
            (local.set $f (f32x4.mul (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $m1)) (local.get $shift)) (local.get $mv)))
            (local.set $d (f64x2.promote_low_f32x4 (local.get $f)))
            (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (local.get $d) (local.get $d))))
            (local.set $d (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $f) (local.get $f))))
            (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (local.get $d) (local.get $d))))
            (local.set $f (f32x4.mul (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $m1)) (local.get $shift)) (local.get $mv)))
            (local.set $d (f64x2.promote_low_f32x4 (local.get $f)))
            (local.set $a0 (f64x2.add (local.get $a0) (f64x2.mul (local.get $d) (local.get $d))))
            (local.set $d (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $f) (local.get $f))))
            (local.set $a1 (f64x2.add (local.get $a1) (f64x2.mul (local.get $d) (local.get $d))))
            (local.set $p (i32.add (local.get $p) (i32.const 32)))
            (br $blockloop)))
        (local.set $a0 (f64x2.add (local.get $a0) (local.get $a1)))
        (f64.store (local.get $sums) (f64.add (f64x2.extract_lane 0 (local.get $a0)) (f64x2.extract_lane 1 (local.get $a0))))
        (local.set $sums (i32.add (local.get $sums) (i32.const 8)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rowloop))))
;; aux(blk, rows, nb, cols, gs, ng, shift, mult, out, rowmax, scratch): from scan's block maxima, per row the
  ;; largest magnitude pattern (i32 at `rowmax`) and, for each of the `ng` group lengths at `gs` (i32, increasing;
  ;; each 16·2^k or ≥ cols, the whole row), Σ n·range² and Σ n·max|w|² over the row's groups (two f64 per row and
  ;; group length at `out`), range = max w − min w widened to contain 0. Group maxima come from pairwise merges of
  ;; the level below (16 → 32 → 64 …), 8 groups per instruction; sums are float32 (the auxiliaries only weight
  ;; the estimator, consistently for every row: exact enough for |w| in 2^-74 … 2^64, and callers check for Inf).
  ;; Scratch: two levels of (P, Q), each nb + 16 u16 wide, zero past the level's count.
  (func (export "aux") (param $blk i32) (param $rows i32) (param $nb i32) (param $cols i32) (param $gs i32) (param $ng i32)
        (param $shift i32) (param $mult f32) (param $out i32) (param $rowmax i32) (param $scratch i32)
    (local $r i32) (local $k i32) (local $g i32) (local $width i32) (local $count i32) (local $j i32)
    (local $stride i32) (local $srcP i32) (local $srcQ i32) (local $dstP i32) (local $dstQ i32) (local $x i32)
    (local $pm i32) (local $qm i32) (local $n i32)
    (local $va v128) (local $vb v128) (local $mv v128) (local $accR v128) (local $accA v128) (local $vp v128) (local $vq v128)
    (local $sr f64) (local $sa f64) (local $pv f64) (local $qv f64) (local $av f64)
    (local.set $mv (f32x4.splat (local.get $mult)))
    (local.set $stride (i32.shl (i32.add (local.get $nb) (i32.const 16)) (i32.const 1)))
    (block $rowsDone
      (loop $rowLoop
        (br_if $rowsDone (i32.ge_u (local.get $r) (local.get $rows)))
        ;; level 0 → scratch A = (P at scratch, Q at scratch + stride), zero-padded; the row's maxima on the way
        (local.set $srcP (i32.add (local.get $blk) (i32.mul (local.get $r) (i32.shl (local.get $nb) (i32.const 1)))))
        (local.set $srcQ (i32.add (local.get $srcP) (i32.mul (local.get $rows) (i32.shl (local.get $nb) (i32.const 1)))))
        (local.set $dstP (local.get $scratch))
        (local.set $dstQ (i32.add (local.get $scratch) (local.get $stride)))
        (local.set $vp (v128.const i64x2 0 0))
        (local.set $vq (v128.const i64x2 0 0))
        (local.set $j (i32.const 0))
        (block $copyDone
          (loop $copyLoop
            (br_if $copyDone (i32.ge_u (local.get $j) (local.get $nb)))
            (local.set $x (i32.shl (local.get $j) (i32.const 1)))
            (local.set $va (v128.load (i32.add (local.get $srcP) (local.get $x))))
            (local.set $vb (v128.load (i32.add (local.get $srcQ) (local.get $x))))
            (v128.store (i32.add (local.get $dstP) (local.get $x)) (local.get $va))
            (v128.store (i32.add (local.get $dstQ) (local.get $x)) (local.get $vb))
            (local.set $j (i32.add (local.get $j) (i32.const 8)))
            (br $copyLoop)))
        ;; the copy ran past nb in steps of 8: zero from nb on (16 entries), then reduce the row
        (v128.store (i32.add (local.get $dstP) (i32.shl (local.get $nb) (i32.const 1))) (v128.const i64x2 0 0))
        (v128.store offset=16 (i32.add (local.get $dstP) (i32.shl (local.get $nb) (i32.const 1))) (v128.const i64x2 0 0))
        (v128.store (i32.add (local.get $dstQ) (i32.shl (local.get $nb) (i32.const 1))) (v128.const i64x2 0 0))
        (v128.store offset=16 (i32.add (local.get $dstQ) (i32.shl (local.get $nb) (i32.const 1))) (v128.const i64x2 0 0))
        (local.set $j (i32.const 0))
        (block $maxDone
          (loop $maxLoop
            (br_if $maxDone (i32.ge_u (local.get $j) (local.get $nb)))
            (local.set $x (i32.shl (local.get $j) (i32.const 1)))
            (local.set $vp (i16x8.max_u (local.get $vp) (v128.load (i32.add (local.get $dstP) (local.get $x)))))
            (local.set $vq (i16x8.max_u (local.get $vq) (v128.load (i32.add (local.get $dstQ) (local.get $x)))))
            (local.set $j (i32.add (local.get $j) (i32.const 8)))
            (br $maxLoop)))
        (local.set $pm (call $hmax (local.get $vp)))
        (local.set $qm (call $hmax (local.get $vq)))
        (i32.store (i32.add (local.get $rowmax) (i32.shl (local.get $r) (i32.const 2)))
          (select (local.get $pm) (local.get $qm) (i32.gt_u (local.get $pm) (local.get $qm))))
        (local.set $srcP (local.get $dstP))
        (local.set $srcQ (local.get $dstQ))
        (local.set $width (i32.const 16))
        (local.set $count (local.get $nb))
        (local.set $k (i32.const 0))
        (block $gsDone
          (loop $gsLoop
            (br_if $gsDone (i32.ge_u (local.get $k) (local.get $ng)))
            (local.set $g (i32.load (i32.add (local.get $gs) (i32.shl (local.get $k) (i32.const 2)))))
            (if (i32.ge_u (local.get $g) (local.get $cols))
              (then
                ;; one group: the whole row
                (local.set $pv (f64.promote_f32 (f32.mul (f32.reinterpret_i32 (i32.shl (local.get $pm) (local.get $shift))) (local.get $mult))))
                (local.set $qv (f64.promote_f32 (f32.mul (f32.reinterpret_i32 (i32.shl (local.get $qm) (local.get $shift))) (local.get $mult))))
                (local.set $av (f64.max (local.get $pv) (local.get $qv)))
                (local.set $pv (f64.add (local.get $pv) (local.get $qv)))
                (local.set $n (local.get $cols))
                (local.set $sr (f64.mul (f64.convert_i32_u (local.get $n)) (f64.mul (local.get $pv) (local.get $pv))))
                (local.set $sa (f64.mul (f64.convert_i32_u (local.get $n)) (f64.mul (local.get $av) (local.get $av)))))
              (else
                ;; merge pairs until the level is g wide
                (block $mergedAll
                  (loop $levelLoop
                    (br_if $mergedAll (i32.ge_u (local.get $width) (local.get $g)))
                    (local.set $dstP (select
                      (i32.add (local.get $scratch) (i32.shl (local.get $stride) (i32.const 1)))
                      (local.get $scratch)
                      (i32.eq (local.get $srcP) (local.get $scratch))))
                    (local.set $dstQ (i32.add (local.get $dstP) (local.get $stride)))
                    (local.set $count (i32.shr_u (i32.add (local.get $count) (i32.const 1)) (i32.const 1)))
                    (local.set $j (i32.const 0))
                    (block $pairsDone
                      (loop $pairLoop
                        (br_if $pairsDone (i32.ge_u (local.get $j) (local.get $count)))
                        (local.set $x (i32.shl (local.get $j) (i32.const 2)))
                        (local.set $va (v128.load (i32.add (local.get $srcP) (local.get $x))))
                        (local.set $vb (v128.load offset=16 (i32.add (local.get $srcP) (local.get $x))))
                        (v128.store (i32.add (local.get $dstP) (i32.shl (local.get $j) (i32.const 1))) (i16x8.max_u
                          (i8x16.shuffle 0 1 4 5 8 9 12 13 16 17 20 21 24 25 28 29 (local.get $va) (local.get $vb))
                          (i8x16.shuffle 2 3 6 7 10 11 14 15 18 19 22 23 26 27 30 31 (local.get $va) (local.get $vb))))
                        (local.set $va (v128.load (i32.add (local.get $srcQ) (local.get $x))))
                        (local.set $vb (v128.load offset=16 (i32.add (local.get $srcQ) (local.get $x))))
                        (v128.store (i32.add (local.get $dstQ) (i32.shl (local.get $j) (i32.const 1))) (i16x8.max_u
                          (i8x16.shuffle 0 1 4 5 8 9 12 13 16 17 20 21 24 25 28 29 (local.get $va) (local.get $vb))
                          (i8x16.shuffle 2 3 6 7 10 11 14 15 18 19 22 23 26 27 30 31 (local.get $va) (local.get $vb))))
                        (local.set $j (i32.add (local.get $j) (i32.const 8)))
                        (br $pairLoop)))
                    ;; zero past the new count (the stores above may have left merged padding there)
                    (local.set $x (i32.shl (local.get $count) (i32.const 1)))
                    (v128.store (i32.add (local.get $dstP) (local.get $x)) (v128.const i64x2 0 0))
                    (v128.store offset=16 (i32.add (local.get $dstP) (local.get $x)) (v128.const i64x2 0 0))
                    (v128.store (i32.add (local.get $dstQ) (local.get $x)) (v128.const i64x2 0 0))
                    (v128.store offset=16 (i32.add (local.get $dstQ) (local.get $x)) (v128.const i64x2 0 0))
                    (local.set $srcP (local.get $dstP))
                    (local.set $srcQ (local.get $dstQ))
                    (local.set $width (i32.shl (local.get $width) (i32.const 1)))
                    (br $levelLoop)))
                ;; Σ (P+Q)² and Σ max(P,Q)² over the level, 8 groups at a time (padding adds 0)
                (local.set $accR (v128.const i64x2 0 0))
                (local.set $accA (v128.const i64x2 0 0))
                (local.set $j (i32.const 0))
                (block $sumDone
                  (loop $sumLoop
                    (br_if $sumDone (i32.ge_u (local.get $j) (local.get $count)))
                    (local.set $x (i32.shl (local.get $j) (i32.const 1)))
                    (local.set $va (v128.load (i32.add (local.get $srcP) (local.get $x))))
                    (local.set $vb (v128.load (i32.add (local.get $srcQ) (local.get $x))))
                    (local.set $vp (f32x4.mul (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $va)) (local.get $shift)) (local.get $mv)))
                    (local.set $vq (f32x4.mul (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $vb)) (local.get $shift)) (local.get $mv)))
                    (local.set $accA (f32x4.add (local.get $accA) (f32x4.mul (f32x4.pmax (local.get $vp) (local.get $vq)) (f32x4.pmax (local.get $vp) (local.get $vq)))))
                    (local.set $vp (f32x4.add (local.get $vp) (local.get $vq)))
                    (local.set $accR (f32x4.add (local.get $accR) (f32x4.mul (local.get $vp) (local.get $vp))))
                    (local.set $vp (f32x4.mul (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $va)) (local.get $shift)) (local.get $mv)))
                    (local.set $vq (f32x4.mul (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $vb)) (local.get $shift)) (local.get $mv)))
                    (local.set $accA (f32x4.add (local.get $accA) (f32x4.mul (f32x4.pmax (local.get $vp) (local.get $vq)) (f32x4.pmax (local.get $vp) (local.get $vq)))))
                    (local.set $vp (f32x4.add (local.get $vp) (local.get $vq)))
                    (local.set $accR (f32x4.add (local.get $accR) (f32x4.mul (local.get $vp) (local.get $vp))))
                    (local.set $j (i32.add (local.get $j) (i32.const 8)))
                    (br $sumLoop)))
                (local.set $sr (f64.mul (f64.convert_i32_u (local.get $g)) (call $hsum (local.get $accR))))
                (local.set $sa (f64.mul (f64.convert_i32_u (local.get $g)) (call $hsum (local.get $accA))))
                ;; a partial last group holds n < g weights: take back (g − n) of its share
                (local.set $n (i32.sub (local.get $cols) (i32.mul (i32.sub (local.get $count) (i32.const 1)) (local.get $g))))
                (if (i32.lt_u (local.get $n) (local.get $g))
                  (then
                    (local.set $x (i32.shl (i32.sub (local.get $count) (i32.const 1)) (i32.const 1)))
                    (local.set $pv (f64.promote_f32 (f32.mul (f32.reinterpret_i32 (i32.shl (i32.load16_u (i32.add (local.get $srcP) (local.get $x))) (local.get $shift))) (local.get $mult))))
                    (local.set $qv (f64.promote_f32 (f32.mul (f32.reinterpret_i32 (i32.shl (i32.load16_u (i32.add (local.get $srcQ) (local.get $x))) (local.get $shift))) (local.get $mult))))
                    (local.set $av (f64.max (local.get $pv) (local.get $qv)))
                    (local.set $pv (f64.add (local.get $pv) (local.get $qv)))
                    (local.set $x (i32.sub (local.get $g) (local.get $n)))
                    (local.set $sr (f64.sub (local.get $sr) (f64.mul (f64.convert_i32_u (local.get $x)) (f64.mul (local.get $pv) (local.get $pv)))))
                    (local.set $sa (f64.sub (local.get $sa) (f64.mul (f64.convert_i32_u (local.get $x)) (f64.mul (local.get $av) (local.get $av)))))))))
            (local.set $x (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $r) (local.get $ng)) (local.get $k)) (i32.const 4))))
            (f64.store (local.get $x) (local.get $sr))
            (f64.store offset=8 (local.get $x) (local.get $sa))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $gsLoop)))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $rowLoop))))

  ;; largest of 8 u16 lanes
  (func $hmax (param $v v128) (result i32)
    (local.set $v (i16x8.max_u (local.get $v) (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $v) (local.get $v))))
    (local.set $v (i16x8.max_u (local.get $v) (i8x16.shuffle 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 (local.get $v) (local.get $v))))
    (local.set $v (i16x8.max_u (local.get $v) (i8x16.shuffle 2 3 0 1 2 3 0 1 2 3 0 1 2 3 0 1 (local.get $v) (local.get $v))))
    (i16x8.extract_lane_u 0 (local.get $v)))

  ;; sum of 4 f32 lanes, in float64
  (func $hsum (param $v v128) (result f64)
    (f64.add
      (f64.add (f64.promote_f32 (f32x4.extract_lane 0 (local.get $v))) (f64.promote_f32 (f32x4.extract_lane 1 (local.get $v))))
      (f64.add (f64.promote_f32 (f32x4.extract_lane 2 (local.get $v))) (f64.promote_f32 (f32x4.extract_lane 3 (local.get $v))))))
)
