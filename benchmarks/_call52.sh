# Session 13, call 5: the Gluon ping-pong INT8 matmul in the library (ops.int8_hopper; scaled_int8_mm_tma takes it on
# Hopper). GPU tests; its speed against the Triton kernel on a step's six shapes; bench train; the step profile.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 170 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_int8_hopper.py tests/test_ops_int8.py \
  tests/test_train_linear.py > $OUT/tests.txt 2>&1; echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -12
timeout 90 python3 benchmarks/_exp_pingpong.py --out $OUT/pingpong.json 2>&1 | grep -v Warn | cut -c1-260 | tail -12
echo "s=$SECONDS"
timeout 210 python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 16 --steps 6 \
  --precisions bf16 int8 fp8-rowwise --out $OUT/train > /tmp/train.log 2>&1
echo "train rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/train.log | grep -a "|\|Error" | tail -6
timeout $((560 - SECONDS)) python3 benchmarks/profile_train.py --precisions int8 --batch-size 16 --out $OUT/profile > /tmp/p.log 2>&1
echo "profile rc=$? s=$SECONDS"; grep -a -A7 "GPU kernel time" /tmp/p.log | grep -a " ms " | head -10
rm -f $OUT/train/*.png; find $OUT -type f | sort | head -20
