# Session 15, call 3: does the step wait on the host (call 2: int8 330.0 ms of kernels, 342.4 ms wall, lowbit's ops
# ~100-160 µs of host time a call profiled, one stream sync a step), and do CUDA graphs (compile mode
# "reduce-overhead") end it, for bf16 and int8? Plus the stacks of the step's syncs.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 400 python3 benchmarks/_exp_train_graphs.py --precisions bf16 int8 --out $OUT/graphs.json 2>&1 \
  | grep -v "Warn\|warn" | cut -c1-600
echo "s=$SECONDS"
