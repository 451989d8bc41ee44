# Session 11, call 5: the quantization passes on call 4's tiles (absmax 32 x 128 on 2 warps, 16 an SM; codes 32 x 128).
# GPU tests of rows_cols, bench train (same run as bf16), the step profile of int8 and fp8-rowwise, and bench linear
# at 1024 / 4096 tokens (W8A8 int8 there now takes the TMA kernel).
export PYTHONPATH=$PWD/src
timeout 80 python3 -m pytest -q --tb=short -rf tests/test_ops_rows_cols.py -p no:logging > $OUT/tests.txt 2>&1; tail -2 $OUT/tests.txt
timeout 200 python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 16 --steps 6 \
  --precisions bf16 int8 fp8-rowwise fp8-tensorwise --out $OUT/train > /tmp/train.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/train.log | grep -a "|\|Error" | tail -6
timeout $((400 - SECONDS)) python3 benchmarks/profile_train.py --precisions int8 fp8-rowwise --batch-size 16 --out $OUT/profile > /tmp/p.log 2>&1
echo "rc=$? s=$SECONDS"; grep -a -A7 "GPU kernel time" /tmp/p.log | grep -a " ms " | head -16
timeout $((480 - SECONDS)) python3 -m lowbit.cli bench linear --m 1024 4096 --peers --out $OUT/linear > /tmp/linear.log 2>&1
echo "rc=$? s=$SECONDS"; grep -a "^|" /tmp/linear.log | cut -c1-220 | head -12
rm -f $OUT/train/*.png $OUT/linear/*.png; find $OUT -type f | sort
