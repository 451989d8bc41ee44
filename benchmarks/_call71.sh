# Session 16, call 4: the int8 row-major copy kernel (ops.int8.row_major_copy) that replaced torch's ~0.4 TB/s
# transposed copy before the TMA matmul: GPU tests, its tiles (benchmarks/_exp_transpose_copy.py).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_int8.py > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; tail -3 $OUT/tests.txt
timeout 120 python3 benchmarks/_exp_transpose_copy.py --out $OUT/transpose-copy.json 2>&1 | grep -v Warn
