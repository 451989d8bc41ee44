export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
timeout 90 python3 -m lowbit.bench.linear $OUT/bench-linear.json > $OUT/bench-linear.log 2>&1; tail -9 $OUT/bench-linear.log
timeout 200 python3 -m lowbit.cli bench generate --models 7b --out $OUT/generate > $OUT/generate.log 2>&1; tail -25 $OUT/generate.log
timeout 270 python3 -m lowbit.cli bench train --preset llama2-1b --precisions bf16 int8 fp8-rowwise --batch-size 8 --seq-len 2048 --steps 6 --warmup-steps 3 --conv-steps 0 --out $OUT/train > $OUT/train.log 2>&1; tail -25 $OUT/train.log
