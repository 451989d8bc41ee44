# session 4, call 3: GPU tests; convergence bf16/int8/fp8 (the issue-5 chart); training throughput; few-token MMA sweep
export PYTHONPATH=$PWD/src
L=$OUT/log.txt
timeout 80 python3 -m pytest -q tests/test_ops_weight_only.py tests/test_ops_int8.py -k "word or mma or rows_cols or tiled or quantize_rows" > $L 2>&1; tail -2 $L
timeout 170 python3 -m lowbit.cli bench train --preset llama2-1b --precisions --data .shards/shk --conv-precisions bf16 int8 fp8-rowwise --conv-steps 250 --conv-batch-size 8 --conv-seq-len 512 --out $OUT/conv >> $L 2>&1; tail -4 $L
rm -rf $OUT/conv/run-*
timeout 160 python3 -m lowbit.cli bench train --preset llama2-1b --precisions bf16 int8 fp8-rowwise fp8-tensorwise --batch-size 8 --seq-len 2048 --steps 6 --warmup-steps 3 --out $OUT/train >> $L 2>&1; tail -6 $L
timeout $((575 - SECONDS)) python3 benchmarks/tune_mma_words.py --out $OUT/tune-mma.json >> $L 2>&1; tail -2 $L
