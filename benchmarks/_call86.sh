# Session 19, call 4: `find` loading up to 256 rows at once, and W8A8's INT8 matmul on the Gluon ping-pong past 128
# tokens: GPU tests, the LLM.int8() kernels, bench linear; then the decode step's attention implementations
# (_exp_decode_attention.py, a 4-layer 7B-shaped model).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_outliers.py tests/test_ops_int8.py tests/test_ops_int8_hopper.py \
  tests/test_layers.py -k "outlier or find or pingpong or tma or large_m or llm_int8 or w8a8" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
timeout 60 python3 benchmarks/profile_kernels.py --out $OUT/profile.json --linear "LLM.int8() (Triton)" "W8A8 int8 (Triton)" --tokens 256 > $OUT/profile.log 2>&1
echo "profile rc=$? s=$SECONDS"; grep -v Warn $OUT/profile.log | cut -c1-120
timeout 200 python3 -m lowbit.cli bench linear --m 1 16 256 4096 --out $OUT/linear > $OUT/bench-linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | cut -c1-200
timeout $((570 - SECONDS)) python3 benchmarks/_exp_decode_attention.py $OUT/attention.json > $OUT/attention.log 2>&1
echo "attention rc=$? s=$SECONDS"; grep -a "^sdpa\|^eager" $OUT/attention.log | cut -c1-1200
