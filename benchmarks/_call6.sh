# session 4, call 2: GPU tests of the fused rows+cols INT8 quantization; word-GEMV sweep; training throughput
export PYTHONPATH=$PWD/src
timeout 90 python3 -m pytest -q -x tests/test_ops_int8.py -k "rows_cols or tiled or quantize_rows" > $OUT/tests.log 2>&1; tail -2 $OUT/tests.log
timeout 220 python3 benchmarks/tune_gemv_words.py --out $OUT/tune-words.json --asm-dir $OUT/asm > $OUT/tune.log 2>&1; tail -2 $OUT/tune.log
timeout 230 python3 -m lowbit.cli bench train --preset llama2-1b --precisions bf16 int8 int8-fwd-gi fp8-rowwise fp8-tensorwise --batch-size 8 --seq-len 2048 --steps 6 --warmup-steps 3 --out $OUT/train > $OUT/train.log 2>&1; tail -9 $OUT/train.log
