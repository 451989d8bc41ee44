# Session 15, call 1: items 1-3 of session 14's _next_call.sh (GPU tests of the producer passes and fused MLP,
# the producer tilings, bench train on the final code).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 120 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_rows_cols.py tests/test_train_mlp.py \
  > $OUT/tests.txt 2>&1; echo "tests rc=$? s=$SECONDS"; tail -4 $OUT/tests.txt
timeout 90 python3 benchmarks/_exp_producer_tiles.py --out $OUT/producer-tiles.json 2>&1 | grep -v Warn | cut -c1-700
echo "s=$SECONDS"
timeout 300 python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 16 --steps 6 \
  --precisions bf16 int8 fp8-rowwise fp8-tensorwise --out $OUT/train > /tmp/train.log 2>&1
echo "train rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/train.log | grep -a "|\|Error" | tail -7
rm -f $OUT/train/*.png
