# Session 11, call 3: the INT8 matmul of K-major operands through a persistent TMA kernel (an opaque op), the absmax
# pass in strips (column atomics once a strip), NaN-carrying absmax in every quantizer, FP8 row-wise on the codes
# path (lowbit's two-pass E4M3 rows and columns, cuBLAS FP8), a linear's input quantized by an opaque op that
# Inductor's CSE merges across q/k/v and gate/up. GPU tests, then the step profile and bench train, same run.
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/tests.txt
timeout 150 python3 -m pytest -q --tb=short -rf tests/test_ops_int8.py tests/test_ops_rows_cols.py tests/test_ops_tiles.py \
  tests/test_ops_int8_adamw.py tests/test_train_linear.py -p no:logging >> $OUT/tests.txt 2>&1; tail -4 $OUT/tests.txt
timeout $((330 - SECONDS)) python3 benchmarks/profile_train.py --precisions bf16 int8 fp8-rowwise --batch-size 16 --out $OUT/profile > /tmp/p.log 2>&1
echo "rc=$? s=$SECONDS"; grep -a "GPU kernel time\|Error\|error" /tmp/p.log | head; grep -a -A8 "GPU kernel time" /tmp/p.log | grep -a " ms " | head -24
timeout $((590 - SECONDS)) python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 16 --steps 6 \
  --precisions bf16 int8 fp8-rowwise fp8-tensorwise --out $OUT/train > /tmp/train.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/train.log | grep -a "|\|Error" | tail -8
rm -f $OUT/train/*.png; find $OUT -type f | sort
