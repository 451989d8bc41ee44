export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
timeout 490 python3 -m lowbit.cli bench train --preset llama2-1b --precisions bf16 fp8-rowwise --batch-size 8 --seq-len 2048 --steps 6 --warmup-steps 3 --data .shards/shk --conv-precisions bf16 int8 fp8-rowwise --conv-steps 200 --conv-batch-size 8 --conv-seq-len 512 --out $OUT/train > $OUT/train.log 2>&1; tail -30 $OUT/train.log
