# Prepared in session 21 after its device time was spent (rename to _callNN.sh when run). Two calls' worth: split it
# at the line "# ---- second call" (the first call's timeouts sum to ~520 s).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
# the GPU tests that calls 3-4 of session 21 did not reach within their timeouts (the swapped kernel's tall 8-bit tiles
# with 64-column K-steps, split-K, the tables), and the interleaved decode attention's
timeout 200 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_weight_only.py tests/test_decode_attention.py \
  -k "swapped or folded or tables or table_ or dequant or attention or masked or bad_shapes" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
# the interleaved slices on a long cache, block sizes 16 / 32 / 64 at the default slice count
for c in "4096 130" "4096 3000" "256 130"; do timeout 40 python3 benchmarks/_exp_attention_splits.py /tmp/a.json $c | grep -a "^{"; done
echo "attention s=$SECONDS"
# bench generate after session 21's tiles (prefill takes the dequantize kernel's new tile; decode is unchanged)
timeout 200 python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 w8a16 nf4 --out $OUT/generate > /dev/null 2>&1
echo "generate rc=$? s=$SECONDS"; grep -a "^| 7b" $OUT/generate/report.md | cut -c1-200
# ---- second call
export PYTHONPATH=$PWD/src:$PWD/benchmarks
# the swapped kernel with the group scales folded into the codes (FOLD, off): if it wins, turn it on where it does
timeout 200 python3 benchmarks/_exp_swapped_fold.py $OUT/swapped-fold.json 2>&1 | grep -a "^{\|Error"
echo "fold s=$SECONDS"
# FP8 W8A8 and LLM.int8() take the weight-only kernels to 64 tokens now (session 21, from call 3's bench linear; not
# re-measured): their GPU tests and bench linear at 64 tokens to confirm
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_gpu.py tests/test_ops_fp8.py -k "llm_int8 or fp8_w8a8" > $OUT/tests-w8a8.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests-w8a8.txt | head -10
timeout $((590 - SECONDS)) python3 -m lowbit.cli bench linear --m 1 16 64 256 4096 --out $OUT/linear > /dev/null 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | head -16 | cut -c1-220
