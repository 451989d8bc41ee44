# session 5, call 1: issue 5's convergence comparison on the H100 (bf16 / int8 / fp8-rowwise, same tokens and seed)
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/gpu.txt
timeout $((560 - SECONDS)) python3 -m lowbit.cli bench train --preset llama2-1b --precisions --data .shards/shk \
  --conv-precisions bf16 int8 fp8-rowwise --conv-steps 250 --conv-batch-size 8 --conv-seq-len 512 --out $OUT/conv > $OUT/conv.log 2>&1
echo "rc=$? seconds=$SECONDS"; rm -rf $OUT/conv/run-*
tr '\r' '\n' < $OUT/conv.log | grep -av "it/s\|s/it" | tail -15; ls $OUT/conv
