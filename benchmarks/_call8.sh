# session 4, call 4: GPU tests of the word kernels; bench linear; convergence bf16/int8/fp8-rowwise
export PYTHONPATH=$PWD/src
L=$OUT/log.txt
timeout 50 python3 -m pytest -q tests/test_ops_weight_only.py -k "word or mma" > $L 2>&1; tail -3 $L
timeout 110 python3 -m lowbit.cli bench linear --out $OUT/bench-linear.json >> $L 2>&1; tail -12 $L
timeout $((320 - SECONDS)) python3 -m lowbit.cli bench train --preset llama2-1b --precisions --data .shards/shk --conv-precisions bf16 int8 fp8-rowwise --conv-steps 120 --conv-batch-size 8 --conv-seq-len 512 --out $OUT/conv > $OUT/conv.log 2>&1; rm -rf $OUT/conv/run-*; tr '\r' '\n' < $OUT/conv.log | grep -av "it/s\|s/it" | tail -12
