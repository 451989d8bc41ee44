# Session 10, call 5: W8A8 int8 at 16-128 tokens — the weight-only path against quantize + INT8 matmul tiles
export PYTHONPATH=$PWD/src
cd benchmarks && timeout 240 python3 _exp_w8a8.py $OUT/w8a8.json 2>&1 | tail -5
