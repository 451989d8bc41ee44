# Session 13, call 3: call 2's ping-pong kernel ended in "unspecified launch failure" at 1024^3 on every variant.
# Bisect: one or two consumers, TMA store or gl.store; then compute-sanitizer on the first that fails.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
bad=""; ok=""
for v in 128x4x8x232x1x0 128x4x8x232x1x1 128x4x8x232x2x0 128x4x8x232x2x1; do
  timeout 40 python3 benchmarks/_exp_gluon_pingpong.py --probe --variants $v 2>&1 | grep -v Warn | tail -1 | cut -c1-300
  echo "[$v] s=$SECONDS"
done
timeout 150 compute-sanitizer --tool memcheck --print-limit 5 python3 benchmarks/_exp_gluon_pingpong.py --probe --variants 128x4x8x232x2x1 > $OUT/sanitizer.txt 2>&1
echo "sanitizer rc=$? s=$SECONDS"; grep -v Warn $OUT/sanitizer.txt | head -40 | cut -c1-300
