# Prepared in session 6, NOT yet run: the training side of the next session's first calls (no peers needed).
# Changed after session 6's last GPU call: int8 codes rounded to nearest without subtraction, convert or clamp.
export PYTHONPATH=$PWD/src
timeout 150 python3 -m pytest -q tests/test_ops_rows_cols.py tests/test_ops_int8.py tests/test_ops_int8_adamw.py \
  tests/test_ops_fp8.py > $OUT/tests.txt 2>&1; tail -2 $OUT/tests.txt
timeout $((560 - SECONDS)) python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 8 --steps 6 \
  --precisions bf16 int8 int8-weight fp8-rowwise --peers --out $OUT/train > $OUT/train.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < $OUT/train.log | grep -a "|" | tail -7
