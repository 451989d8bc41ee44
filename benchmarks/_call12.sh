# session 5, call 4: GPU tests of the new kernels (Markstein division, E4M3 rows/cols, autotuned INT8 mm), then
# training throughput (int8 / fp8-rowwise on the codes path) and bench linear (W8A8 at M=4096 autotuned, W4A16 zero points)
export PYTHONPATH=$PWD/src
L=$OUT/tests.txt
timeout 75 python3 -m pytest -q -x tests/test_ops_rows_cols.py tests/test_ops_int8.py > $L 2>&1; tail -4 $L
timeout $((290 - SECONDS)) python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 8 --steps 6 \
  --precisions bf16 int8 fp8-rowwise --out $OUT/train > $OUT/train.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < $OUT/train.log | grep -a "|" | tail -6
timeout $((385 - SECONDS)) python3 -m lowbit.cli bench linear --out $OUT/bench-linear.json > $OUT/linear.log 2>&1
echo "rc=$? s=$SECONDS"; tail -12 $OUT/linear.log
