# Prepared in session 5, NOT yet run: what the next device call should measure first.
# run with carry [".whl"]: installs the peers (torchao 0.18.0, bitsandbytes 0.50.2) for the side-by-side rows.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/torchao-*.whl .whl/bitsandbytes-*.whl || exit  # the device README's way: no registry there
export PYTHONPATH=$PWD/src:/tmp/site
# kernels changed after session 5's last GPU call: fused int8 AdamW step, FP8 zero sign, tile-scaled codes()
timeout 150 python3 -m pytest -q tests/test_ops_int8_adamw.py tests/test_ops_rows_cols.py tests/test_ops_fp8.py \
  tests/test_train_int8_weight.py > $OUT/tests.txt 2>&1; tail -3 $OUT/tests.txt
# int8-weight (fused optimizer step, one graph a block) against bf16, and the FP8 rows after the tile_scaled change
timeout $((420 - SECONDS)) python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 8 --steps 6 \
  --precisions bf16 int8-weight int8 fp8-rowwise --peers --out $OUT/train > $OUT/train.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < $OUT/train.log | grep -a "|" | tail -6
# then, in further calls (each with the pip line above): lowbit bench linear --out $OUT/linear (peers side by side);
# lowbit bench train --batch-size 8 --precisions bf16 int8 fp8-rowwise fp8-tensorwise (torchao's three training rows
# come by default); lowbit bench generate --models 7b 13b --schemes bf16 w4a16-g128 w8a16 torchao-int4 torchao-int8 bnb-nf4
