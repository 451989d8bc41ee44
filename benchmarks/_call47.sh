# Session 12, call 4: calls 45-46's warp-specialized INT8 sweeps printed nothing: where do the kernels stop?
export PYTHONPATH=$PWD/src:$PWD/benchmarks
for probe in "inner bf16 0" "inner bf16 3" "inner int8 0" "inner int8 3" "persistent int8 3" "inner int8 1"; do
  timeout 45 python3 benchmarks/_exp_ws_probe.py $probe 2>&1 | grep -v Warn | tail -3
  echo "[$probe] rc=${PIPESTATUS[0]} s=$SECONDS"
done
