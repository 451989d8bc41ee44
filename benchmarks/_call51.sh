# Session 13, call 4: the ping-pong kernel with its consumers taking turns at the MMAs (call 2's launch failure: a
# consumer a lap ahead read an old phase's parity). Probe at 4096^3 (several tiles a program), then the sweep.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
ok=""
for v in 128x4x8x232x1x1 128x4x8x232x2x1 128x4x8x232x2x0; do
  timeout 40 python3 benchmarks/_exp_gluon_pingpong.py --probe --variants $v 2>&1 | grep -v Warn | tail -1 | cut -c1-300
  echo "[$v] s=$SECONDS"
done
timeout 240 python3 benchmarks/_exp_gluon_pingpong.py --out $OUT/pingpong.json --variants 128x4x8x232x2x1 128x5x8x232x2x1 128x4x16x232x2x1 128x4x8x232x1x1 2>&1 | grep -v Warn | tail -12
echo "s=$SECONDS"
