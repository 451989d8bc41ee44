# Session 15, call 5 (the last of the device time): which part of `lowbit train` breaks the CUDA graph trees (call
# 4's GPU test: gradient accumulation and evaluation every 3 steps, "accessing tensor output of CUDAGraphs that has
# been overwritten by a subsequent run" in the backward), and whether the candidate fixes hold.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 200 python3 benchmarks/_exp_graph_loop.py --out $OUT/graph-loop.json 2>&1 | grep -v "Warn\|warn" | cut -c1-700
echo "s=$SECONDS"
