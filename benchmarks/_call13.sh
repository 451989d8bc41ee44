# session 6, call 1 (carry [".whl"]): GPU tests of the kernels changed after session 5's last call (fused int8 AdamW
# step, FP8 zero sign, tile-scaled codes()), then bench train with torchao's training rows side by side.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/torchao-*.whl .whl/bitsandbytes-*.whl || exit  # the device README's way: no registry there
export PYTHONPATH=$PWD/src:/tmp/site
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
timeout 170 python3 -m pytest -q tests/test_ops_int8_adamw.py tests/test_ops_rows_cols.py tests/test_ops_fp8.py \
  tests/test_train_int8_weight.py > $OUT/tests.txt 2>&1; tail -3 $OUT/tests.txt
timeout $((570 - SECONDS)) python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 8 --steps 6 \
  --precisions bf16 int8-weight int8 fp8-rowwise fp8-tensorwise --out $OUT/train > $OUT/train.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < $OUT/train.log | grep -a "|" | tail -10
