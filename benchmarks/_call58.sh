# Session 14, call 2 (= session 13 _next_call.sh items 4-5): bench train, four precisions; bench matmul on CUDA graphs.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 260 python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 16 --steps 6 \
  --precisions bf16 int8 fp8-rowwise fp8-tensorwise --out $OUT/train > /tmp/train.log 2>&1
echo "train rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/train.log | grep -a "|\|Error" | tail -7
rm -f $OUT/train/*.png
timeout 60 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_gpu.py -k timing 2>&1 | tail -2
timeout 150 python3 -m lowbit.cli bench matmul --sizes 1024 4096 --out $OUT/matmul > /tmp/mm.log 2>&1
echo "matmul rc=$? s=$SECONDS"; grep -a "A@Bt\|a@bT\|eager\|Error" /tmp/mm.log | head -14 | cut -c1-160
rm -f $OUT/matmul/*.png
