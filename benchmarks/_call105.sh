# Session 22, call 6: bench linear with the act-order gather's final tile (one row a program; call 5 checked its
# output on the GPU bit for bit at all twelve shapes, so no tests here: the device time left was ~4 min)
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 150 python3 -m lowbit.cli bench linear --m 1 16 32 64 128 256 4096 --out $OUT/linear > /dev/null 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | head -16 | cut -c1-300
