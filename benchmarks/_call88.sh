# Session 19, call 6: `find` skipping the list's scan when no program saw an outlier (call 5: the scan is ~2.7 µs a
# 4096-column chunk), 64-row loads: GPU tests, _exp_find.py's library column, the LLM.int8() kernels, bench linear.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 170 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_outliers.py tests/test_ops_int8.py tests/test_gpu.py \
  tests/test_layers.py tests/test_ops_weight_only.py -k "outlier or find or quantize_rows or opcheck or llm_int8 or w8a8 or layer_on_cuda or split or pingpong" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
timeout 60 python3 benchmarks/profile_kernels.py --out $OUT/profile.json --linear "LLM.int8() (Triton)" --tokens 256 4096 > $OUT/profile.log 2>&1
echo "profile rc=$? s=$SECONDS"; grep -v Warn $OUT/profile.log | cut -c1-120
timeout $((440 - SECONDS)) python3 -m lowbit.cli bench linear --m 1 16 256 4096 --out $OUT/linear > $OUT/bench-linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | cut -c1-200
