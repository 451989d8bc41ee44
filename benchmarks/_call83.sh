# Prepared in session 18 after its device time was spent: LLM.int8()'s outlier columns as zero inside quantize_rows'
# one-pass kernel (no masked copy of x) and `outliers.find` as one chunk up to 16384 columns, neither run on a GPU yet.
# GPU tests, then `lowbit bench linear` for LLM.int8()'s row (session 18, call 4: 0.372 ms, 0.56x bf16 at 256 tokens;
# 2.027 ms, 1.26x at 4096).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_outliers.py tests/test_ops_int8.py tests/test_gpu.py \
  tests/test_layers.py -k "outlier or find or quantize_rows or opcheck or llm_int8 or layer_on_cuda" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
timeout $((560 - SECONDS)) python3 -m lowbit.cli bench linear --m 1 16 256 4096 --out $OUT/linear > $OUT/bench-linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | cut -c1-200
