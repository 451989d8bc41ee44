# Session 13, call 2: the ping-pong Gluon INT8 matmul (benchmarks/_exp_gluon_pingpong.py): which variants finish, then
# the training and square shapes against the TMA kernel; ncu of cuBLAS INT8 (its kernel is named Kernel2).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
ok=""
for v in 128x4x8x232 128x4x8x208 128x5x8x232 64x8x8x232; do
  timeout 40 python3 benchmarks/_exp_gluon_pingpong.py --probe --variants $v 2>&1 | grep -v Warn | tail -2
  rc=${PIPESTATUS[0]}; echo "[$v] rc=$rc s=$SECONDS"; [ $rc = 0 ] && ok="$ok $v"
done
[ -n "$ok" ] && timeout 200 python3 benchmarks/_exp_gluon_pingpong.py --out $OUT/pingpong.json --variants $ok 128x4x16x232 2>&1 | grep -v Warn | tail -12
echo "s=$SECONDS"
NCU="ncu --clock-control none --launch-skip 2 --launch-count 1 --section SpeedOfLight --metrics lts__t_bytes.sum.per_second"
timeout 60 $NCU --kernel-name regex:Kernel2 python3 benchmarks/ncu_int8_mm.py --cublas > $OUT/ncu-cublas.txt 2>&1; echo "ncu rc=$?"
grep -a "Kernel2\|Duration\|Throughput\|lts__" $OUT/ncu-cublas.txt | head -12
echo "s=$SECONDS"
