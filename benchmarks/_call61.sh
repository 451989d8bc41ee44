# Session 14, call 5: the fused gated MLP (train.mlp: SiLU and its backward inside the quantization passes) and
# the opaque quantization op: GPU tests, bench train (four precisions), int8's profile.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_rows_cols.py tests/test_train_mlp.py \
  tests/test_train_linear.py > $OUT/tests.txt 2>&1; echo "tests rc=$? s=$SECONDS"; tail -4 $OUT/tests.txt
timeout 300 python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 16 --steps 6 \
  --precisions bf16 int8 fp8-rowwise fp8-tensorwise --out $OUT/train > /tmp/train.log 2>&1
echo "train rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/train.log | grep -a "|\|Error" | tail -7
rm -f $OUT/train/*.png
timeout 120 python3 benchmarks/profile_train.py --precisions int8 --batch-size 16 --out $OUT > /dev/null 2>&1
echo "profile rc=$? s=$SECONDS"; head -32 $OUT/profile-int8.txt
