set -x
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
timeout 150 python3 -m pytest -q -x tests/test_ops_weight_only.py tests/test_ops_w4a16.py > $OUT/gpu-tests.log 2>&1; tail -3 $OUT/gpu-tests.log
timeout 280 python3 benchmarks/tune_weight_only.py --out $OUT/tune.json > $OUT/tune.log 2>&1; tail -40 $OUT/tune.log
timeout 120 python3 -m lowbit.bench.linear $OUT/bench-linear.json > $OUT/bench-linear.log 2>&1; tail -12 $OUT/bench-linear.log
