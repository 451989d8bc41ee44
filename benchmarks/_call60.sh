# Session 14, call 4: the opaque quantization op and in-kernel scales (train.linear._codes_op, rows_cols pass 2), and
# split-K in the Gluon INT8 matmul (int8_hopper.split_k): GPU tests, the split-K sweep, bench train (four precisions),
# int8's profile.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_int8_hopper.py tests/test_ops_rows_cols.py \
  tests/test_ops_int8.py tests/test_train_linear.py > $OUT/tests.txt 2>&1; echo "tests rc=$? s=$SECONDS"; tail -4 $OUT/tests.txt
timeout 120 python3 benchmarks/_exp_split_k.py --out $OUT/split-k.json 2>&1 | grep -v Warn | cut -c1-600
echo "s=$SECONDS"
timeout 300 python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 16 --steps 6 \
  --precisions bf16 int8 fp8-rowwise fp8-tensorwise --out $OUT/train > /tmp/train.log 2>&1
echo "train rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/train.log | grep -a "|\|Error" | tail -7
rm -f $OUT/train/*.png
timeout 120 python3 benchmarks/profile_train.py --precisions int8 --batch-size 16 --out $OUT > /dev/null 2>&1
echo "profile rc=$? s=$SECONDS"; head -30 $OUT/profile-int8.txt
