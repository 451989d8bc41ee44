# Session 19, call 3: `outliers.find` as one kernel with the column peaks (torch's column max was 11 µs a linear at
# 256 tokens, call 2): its GPU tests and bench linear; W8A8's INT8 matmul tiles at 128-512 tokens (_exp_w8a8_mid.py);
# the LLM.int8() kernels again.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_outliers.py tests/test_ops_int8.py tests/test_gpu.py \
  tests/test_layers.py tests/test_ops_weight_only.py -k "outlier or find or quantize_rows or opcheck or llm_int8 or layer_on_cuda or split" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
timeout 60 python3 benchmarks/profile_kernels.py --out $OUT/linear256.json --linear "LLM.int8() (Triton)" --tokens 256 4096 > $OUT/linear256.log 2>&1
echo "profile rc=$? s=$SECONDS"; grep -v Warn $OUT/linear256.log | cut -c1-120
timeout 200 python3 -m lowbit.cli bench linear --m 1 16 256 4096 --out $OUT/linear > $OUT/bench-linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | cut -c1-200
timeout $((570 - SECONDS)) python3 benchmarks/_exp_w8a8_mid.py $OUT/w8a8-mid.json > $OUT/w8a8-mid.log 2>&1
echo "w8a8 rc=$? s=$SECONDS"; grep -a "^[0-9]" $OUT/w8a8-mid.log | cut -c1-900
