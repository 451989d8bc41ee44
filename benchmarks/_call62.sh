# Session 14, call 6 (the last of its device time): the producer passes' GPU tests (fp32 tolerance of call 5) and the
# fused MLP's GPU test; one MLP layer fused and unfused, wall against kernel time and allocator calls.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 70 python3 -m pytest -q --tb=line -rf -p no:logging tests/test_ops_rows_cols.py tests/test_train_mlp.py \
  -k "produce or gpu" > $OUT/tests.txt 2>&1; echo "tests rc=$? s=$SECONDS"; tail -6 $OUT/tests.txt
timeout 110 python3 benchmarks/_exp_fused_mlp.py --out $OUT/fused-mlp.json 2>&1 | grep -v Warn | cut -c1-900
echo "s=$SECONDS"
