# session 5, call 2: INT8 ops as triton_ops (compiled graphs launch them): GPU tests, then training throughput
export PYTHONPATH=$PWD/src
L=$OUT/log.txt
timeout 60 python3 -m pytest -q tests/test_ops_int8.py > $L 2>&1; tail -3 $L
timeout $((470 - SECONDS)) python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 8 --steps 6 \
  --precisions bf16 int8 int8-fwd int8-fwd-gi fp8-rowwise fp8-tensorwise int8-weight --out $OUT/train > $OUT/train.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < $OUT/train.log | grep -av "it/s\|s/it" | tail -16
timeout $((575 - SECONDS)) python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 8 --seq-len 512 --steps 6 \
  --precisions bf16 int8 --out $OUT/train512 > $OUT/train512.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < $OUT/train512.log | grep -a "|" | tail -4
