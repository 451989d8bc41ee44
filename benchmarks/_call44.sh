# Session 12, call 1: session 11's untested changes on the GPU (E4M3 codes without the clamp, the TMA op's
# alignment fallback, INT8 AdamW's NaN test), the E4M3 codes pass's speed, then the slab experiment (_exp_chunked.py).
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/tests.txt
timeout 200 python3 -m pytest -q --tb=short -rf tests/test_ops_rows_cols.py tests/test_ops_tiles.py tests/test_ops_fp8.py \
  tests/test_ops_int8.py tests/test_ops_int8_adamw.py tests/test_train_linear.py -p no:logging >> $OUT/tests.txt 2>&1; tail -3 $OUT/tests.txt
timeout 60 python3 benchmarks/_exp_quant_passes.py --out $OUT/quant-passes.json 2>&1 | grep -v Warn | tail -4
timeout $((570 - SECONDS)) python3 benchmarks/_exp_chunked.py $OUT/chunked.json 2>&1 | grep -v Warn | tail -40
echo "s=$SECONDS"
