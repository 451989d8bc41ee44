# Session 18, call 4: LLM.int8()'s outlier columns found by one small kernel: GPU tests (the layer captured at 33 and
# 300 tokens, the kernels, the generate bench's schemes), bench linear, and bench generate 7B with its new row.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_outliers.py tests/test_gpu.py tests/test_layers.py \
  tests/test_bench_generate.py -k "outlier or find or llm_int8 or llm-int8 or layer_on_cuda or decode_step" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
timeout 120 python3 -m lowbit.cli bench linear --m 1 16 256 4096 --out $OUT/linear > $OUT/bench-linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | cut -c1-200
timeout $((560 - SECONDS)) python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 llm-int8 --out $OUT/generate > $OUT/bench-generate.log 2>&1
echo "generate rc=$? s=$SECONDS"; grep -a "^| " $OUT/generate/report.md | cut -c1-240; tail -3 $OUT/bench-generate.log
