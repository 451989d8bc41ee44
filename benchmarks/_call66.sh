# Session 15, call 4: CUDA graphs as the training default (train.loop.compile_blocks, mode reduce-overhead). Their GPU
# tests (same losses as kernels launched one by one; stochastic rounding redrawn every replay), then bench train on
# the four precisions with graphs, the peak memory now the reserved peak.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_train_loop.py -k "cuda_graphs" \
  > $OUT/tests.txt 2>&1; echo "tests rc=$? s=$SECONDS"; tail -4 $OUT/tests.txt
timeout 300 python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 16 --steps 6 \
  --precisions bf16 int8 fp8-rowwise fp8-tensorwise --out $OUT/train > /tmp/train.log 2>&1
echo "train rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/train.log | grep -a "|\|Error" | tail -7
rm -f $OUT/train/*.png
