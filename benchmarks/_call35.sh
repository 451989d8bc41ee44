# Session 10, call 6: the INT8 matmul's narrower tiles at ≤ 128 rows and VALUES_MAX_M = 32 — GPU tests, then
# bench linear at 16-256 tokens (no peers)
export PYTHONPATH=$PWD/src
timeout 100 python3 -m lowbit.cli bench linear --m 16 32 64 128 256 --peers --out $OUT/linear > /tmp/linear.log 2>&1; echo "linear rc=$? s=$SECONDS"
grep -a "^|" /tmp/linear.log | cut -c1-230; rm -f $OUT/linear/speedup.png $OUT/linear/report.md
timeout $((400 - SECONDS)) python3 -m pytest -q --tb=line -rf tests/test_ops_int8.py tests/test_ops_fp8.py tests/test_layers.py > $OUT/tests.txt 2>&1; tail -4 $OUT/tests.txt
