# Session 13, call 10: the Gluon W4A16 GEMM with its scales and zero points loaded a step ahead, and 4 or 8 code bytes a
# thread (call 9's ncu: 40 % of stalls on those loads, 9.4-way bank conflicts storing the dequantized tile).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 100 python3 benchmarks/_exp_gluon_w4.py --out $OUT/gluon-w4.json --m 64 256 1024 4096 2>&1 | grep -v Warn | tail -5 | cut -c1-900
echo "s=$SECONDS"
