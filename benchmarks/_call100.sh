# Session 22, call 1 (prepared in session 21 as the first half of _next_call.sh).
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
