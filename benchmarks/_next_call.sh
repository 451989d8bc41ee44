# Prepared in session 20 after its device time was spent (rename to _callNN.sh when run): the compiled act-order layer (x gathered before the op under torch.compile, inductor, fullgraph) on the GPU.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_gptq.py tests/test_bench_linear.py -k "act_order or act" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
# the word GEMV's tiles on the fused projections' shapes (4096 → 12288, 4096 → 22016: no sweep has seen them)
timeout 300 python3 benchmarks/_exp_fused_words.py $OUT/fused-words.json > $OUT/fused-words.log 2>&1
echo "fused words rc=$? s=$SECONDS"; grep -a "^{\|Error" $OUT/fused-words.log | cut -c1-400
# 16-token (packed-code) tiles in the swapped kernel at 32-128 tokens, where the dispatch loses to bf16 from ~32 tokens
timeout 240 python3 benchmarks/_exp_swapped_16.py $OUT/swapped-16.json > $OUT/swapped-16.log 2>&1
echo "swapped 16 rc=$? s=$SECONDS"; grep -a "^{\|Error" $OUT/swapped-16.log | cut -c1-300
