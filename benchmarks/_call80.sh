# Session 18, call 3: LLM.int8()'s outlier-product kernel (count read on the device) and NF4 two codes a lookup in the
# swapped kernel: GPU tests, the table4 dispatch re-swept, bench linear.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_outliers.py tests/test_gpu.py tests/test_layers.py \
  tests/test_ops_weight_only.py -k "outlier or llm_int8 or layer_on_cuda or table or swapped" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
cp src/lowbit/ops/weight_only_dispatch.json $OUT/dispatch.json
timeout 150 python3 -m lowbit.cli bench dispatch --kinds table4 --budget-s 100 --write-to $OUT/dispatch.json --out $OUT/dispatch > $OUT/dispatch.log 2>&1
echo "dispatch rc=$? s=$SECONDS"; tail -25 $OUT/dispatch.log | cut -c1-220
timeout $((560 - SECONDS)) python3 -m lowbit.cli bench linear --m 1 16 256 4096 --out $OUT/linear > $OUT/bench-linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | cut -c1-200
