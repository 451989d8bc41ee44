export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
timeout 100 python3 benchmarks/tune_weight_only.py --out $OUT/tune.json > $OUT/tune.log 2>&1; grep best $OUT/tune.log
timeout 200 python3 -m pytest -q tests/test_ops_weight_only.py tests/test_ops_fp8.py tests/test_bench_matmul.py tests/test_bench_generate.py tests/test_ops_int8.py > $OUT/gpu-tests.log 2>&1; tail -15 $OUT/gpu-tests.log
timeout 200 python3 -m lowbit.cli bench matmul --out $OUT/matmul > $OUT/bench-matmul.log 2>&1; tail -25 $OUT/bench-matmul.log
ls $OUT/matmul
