# Session 14, call 1 (= session 13 _next_call.sh items 1-3): the two W4A16 Gluon experiments, ncu of the first, FP8 ping-pong.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 100 python3 benchmarks/_exp_gluon_w4.py --out $OUT/gluon-w4.json --m 64 256 1024 4096 2>&1 | grep -v Warn | tail -5 | cut -c1-900
echo "s=$SECONDS"
timeout 90 python3 benchmarks/_exp_gluon_w4_rega.py --out $OUT/gluon-w4-rega.json 2>&1 | grep -v Warn | tail -5 | cut -c1-900
echo "rega rc=${PIPESTATUS[0]} s=$SECONDS"
timeout 90 ncu --clock-control none --kernel-name regex:w4_kernel --launch-skip 2 --launch-count 1 --section SpeedOfLight \
  --section WarpStateStats --section MemoryWorkloadAnalysis_Tables \
  python3 benchmarks/_exp_gluon_w4.py --ncu --m 1024 --tiles 128x64x128x4x4 > $OUT/ncu-w4.txt 2>&1; echo "ncu rc=$? s=$SECONDS"
grep -a "Duration\|SM Busy\|bank conflict\|stalled" $OUT/ncu-w4.txt | head -12 | cut -c1-150
timeout 120 python3 benchmarks/_exp_fp8_pingpong.py --out $OUT/fp8-pingpong.json 2>&1 | grep -v Warn | tail -10 | cut -c1-400
echo "s=$SECONDS"
