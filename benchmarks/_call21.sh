# session 7, call 2 (carry [".whl"]), on an NVIDIA H200: GPU tests of the training kernels (int8 codes rounded to
# nearest without subtraction/convert/clamp, changed after session 6's last call), then bench train at the
# issue's batch 16 x 2048 with torchao's training rows side by side.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/torchao-*.whl .whl/bitsandbytes-*.whl || exit  # the device README's way: no registry there
export PYTHONPATH=$PWD/src:/tmp/site
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
timeout 150 python3 -m pytest -q tests/test_ops_rows_cols.py tests/test_ops_int8.py tests/test_ops_int8_adamw.py \
  tests/test_ops_fp8.py > $OUT/tests.txt 2>&1; tail -2 $OUT/tests.txt
timeout $((575 - SECONDS)) python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 16 --steps 6 \
  --precisions bf16 int8 int8-weight fp8-rowwise fp8-tensorwise --out $OUT/train > $OUT/train.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < $OUT/train.log | grep -a "|" | tail -12
