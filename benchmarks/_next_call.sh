# Prepared in session 16 after its device time was spent: the GPU tests of what changed after its last call (call 6):
# `row_major_copy` leaving an empty tensor to torch (new test case), and the INT8/FP8 ops around it. Rename to
# _call74.sh when run.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_int8.py tests/test_ops_fp8.py \
  > $OUT/tests.txt 2>&1; echo "tests rc=$? s=$SECONDS"; tail -3 $OUT/tests.txt
