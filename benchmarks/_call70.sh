# Session 16, call 3: the K-major copies of a transposed INT8 operand (GPU test, then `lowbit bench matmul` at seed
# 002's four sizes: A@B and Aᵀ@B against session 14's 78 / 55 TOP/s at 4096), lowbit's FP8 op in all three layouts,
# and the device's read and copy rates under the quantization passes (benchmarks/_exp_bandwidth.py).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_int8.py tests/test_ops_fp8.py \
  tests/test_bench_matmul.py > $OUT/tests.txt 2>&1; echo "tests rc=$? s=$SECONDS"; tail -3 $OUT/tests.txt
timeout 60 python3 benchmarks/_exp_bandwidth.py --out $OUT/bandwidth.json 2>&1 | grep -v Warn
timeout $((560 - SECONDS)) python3 -m lowbit.cli bench matmul --out $OUT/matmul > $OUT/bench-matmul.log 2>&1
echo "matmul rc=$? s=$SECONDS"; grep -a "^| lowbit\|^| cuBLAS\|^###" $OUT/matmul/report.md | cut -c1-150
