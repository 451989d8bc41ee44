# Session 21, call 1 (prepared in session 20): the compiled act-order layer on the GPU; 16-token tiles and the token-first
# grid in the swapped kernel at 32-128 tokens; the word GEMV's tiles on the fused projections' shapes.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 120 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_gptq.py tests/test_bench_linear.py -k "act_order or act" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
timeout 230 python3 benchmarks/_exp_swapped_16.py $OUT/swapped-16.json > $OUT/swapped-16.log 2>&1
echo "swapped 16 rc=$? s=$SECONDS"; grep -a "^{\|Error" $OUT/swapped-16.log | cut -c1-400
timeout 200 python3 benchmarks/_exp_fused_words.py $OUT/fused-words.json > $OUT/fused-words.log 2>&1
echo "fused words rc=$? s=$SECONDS"; grep -a "^{\|Error" $OUT/fused-words.log | cut -c1-500
