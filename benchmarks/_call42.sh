# Session 11, call 4: GPU tests of call 3's two fixes (TMA tile for fp32 outputs, NaN kept by absmax_scale), then
# the quantization passes tile by tile at the training shapes (benchmarks/_exp_quant_passes.py)
export PYTHONPATH=$PWD/src
timeout 150 python3 -m pytest -q --tb=short -rf tests/test_ops_int8.py tests/test_ops_rows_cols.py tests/test_ops_tiles.py -p no:logging > $OUT/tests.txt 2>&1; tail -3 $OUT/tests.txt
timeout 300 python3 benchmarks/_exp_quant_passes.py --out $OUT/quant-passes.json 2>&1 | grep -v Warn | tail -6
