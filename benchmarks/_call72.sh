# Session 16, call 5: `lowbit bench matmul` at seed 002's four sizes with the row-major copy kernel on its measured
# tile (call 4): A@B and Aᵀ@B against call 3 (torch's transposed copy) and session 14.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 400 python3 -m lowbit.cli bench matmul --out $OUT/matmul > $OUT/bench-matmul.log 2>&1
echo "matmul rc=$? s=$SECONDS"; grep -a "^| lowbit INT8\|^| lowbit FP8\|^| cuBLAS BF16\|^###" $OUT/matmul/report.md | cut -c1-150
