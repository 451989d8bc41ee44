# Session 11, call 1: GPU tests of session 10's untested changes (weight-only backward via the dequantize op, the
# 8-bit tall tiles, QLoRA), then where a training step's GPU time goes on the H200 at the 16 x 2048
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 170 python3 -m pytest -q --tb=line -rf tests/test_ops_weight_only.py tests/test_api.py -k "not cpu_only" > $OUT/tests.txt 2>&1; tail -6 $OUT/tests.txt
timeout 400 python3 benchmarks/profile_train.py --precisions bf16 int8 fp8-rowwise fp8-tensorwise --batch-size 16 --out $OUT/profile > /tmp/p.log 2>&1
grep -a "GPU kernel time\|Error" /tmp/p.log; tail -3 /tmp/p.log
