# Session 13, call 8: the Gluon W4A16 GEMM with weight_only's nibble-pair PTX and a packed multiply by the scale (call 7
# converted each code int -> float, ~9 instructions a weight, and ran at 0.21-0.41x bf16).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 45 python3 benchmarks/_exp_gluon_w4.py --m 256 --tiles 128x64x64x6 > /tmp/probe.txt 2>&1
rc=$?; grep -v Warn /tmp/probe.txt | tail -3 | cut -c1-600; echo "probe rc=$rc s=$SECONDS"
[ $rc = 0 ] && timeout 150 python3 benchmarks/_exp_gluon_w4.py --out $OUT/gluon-w4.json --m 64 256 1024 4096 \
  --tiles 128x64x64x6 128x128x64x5 256x64x64x4 128x64x128x4 2>&1 | grep -v Warn | tail -8 | cut -c1-900
echo "s=$SECONDS"
