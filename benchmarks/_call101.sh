# Session 22, call 2 (prepared in session 21 as the second half of _next_call.sh).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
# the swapped kernel with the group scales folded into the codes (FOLD, off): if it wins, turn it on where it does
timeout 240 python3 benchmarks/_exp_swapped_fold.py $OUT/swapped-fold.json 2>&1 | grep -a "^{\|Error"
echo "fold s=$SECONDS"
# FP8 W8A8 and LLM.int8() take the weight-only kernels to 64 tokens now (session 21, from call 3's bench linear; not
# re-measured): their GPU tests and bench linear at 64 tokens to confirm
timeout 120 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_gpu.py tests/test_ops_fp8.py -k "llm_int8 or fp8_w8a8" > $OUT/tests-w8a8.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests-w8a8.txt | head -10
timeout $((590 - SECONDS)) python3 -m lowbit.cli bench linear --m 1 16 64 256 4096 --out $OUT/linear > /dev/null 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | head -16 | cut -c1-220
