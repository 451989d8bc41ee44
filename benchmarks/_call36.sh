# Session 10, call 7: GPU tests after the INT8 narrow tiles were limited to K-major operands (call 6 found a wrong
# sum with A transposed)
export PYTHONPATH=$PWD/src
timeout 300 python3 -m pytest -q --tb=line -rf tests/test_ops_int8.py tests/test_ops_fp8.py tests/test_layers.py tests/test_train_linear.py > $OUT/tests.txt 2>&1; tail -6 $OUT/tests.txt
