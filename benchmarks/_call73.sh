# Session 16, call 6 (the last of the device time): the row-major copy moved to ops.tiles and used by lowbit's FP8 op
# too (its A@B and Aᵀ@B paid torch's transposed copy in call 5): GPU tests, then `lowbit bench matmul`.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 170 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_int8.py tests/test_ops_fp8.py > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; tail -3 $OUT/tests.txt
timeout $((380 - SECONDS)) python3 -m lowbit.cli bench matmul --out $OUT/matmul > $OUT/bench-matmul.log 2>&1
echo "matmul rc=$? s=$SECONDS"; grep -a "^| lowbit INT8\|^| lowbit FP8\|^| cuBLAS BF16\|^###" $OUT/matmul/report.md | cut -c1-150
