# Session 10, call 9: the INT8 autotune keyed on M rounded up to a power of two — GPU tests of the INT8 ops
export PYTHONPATH=$PWD/src
timeout 150 python3 -m pytest -q --tb=short -rf tests/test_ops_int8.py tests/test_ops_rows_cols.py > $OUT/tests.txt 2>&1; tail -15 $OUT/tests.txt
