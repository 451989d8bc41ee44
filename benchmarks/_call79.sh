# Session 18, call 2: LLM.int8()'s top-k outlier columns (GPU tests, bench linear), and the word GEMV as fewer, longer
# programs streaming their row blocks (benchmarks/_exp_row_loop.py).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_gpu.py tests/test_layers.py -k "llm_int8 or layer_on_cuda" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; tail -2 $OUT/tests.txt
timeout 200 python3 benchmarks/_exp_row_loop.py --out $OUT/row-loop.json > $OUT/row-loop.log 2>&1
echo "row loop rc=$? s=$SECONDS"; cat $OUT/row-loop.log | cut -c1-3000
timeout $((560 - SECONDS)) python3 -m lowbit.cli bench linear --m 1 16 256 4096 --out $OUT/linear > $OUT/bench-linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | cut -c1-200
