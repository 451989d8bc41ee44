# Session 17, call 4 (the last of the device time): NF4 back on the 4-bit tile it had, LLM.int8()'s uncalibrated decode
# straight through the op, the re-swept H200 dispatch entry: GPU tests, then `lowbit bench linear` at 1 and 16 tokens.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 120 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_gpu.py tests/test_ops_weight_only.py \
  -k "llm_int8 or table or lut or nf4 or dispatch" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; tail -2 $OUT/tests.txt
timeout $((330 - SECONDS)) python3 -m lowbit.cli bench linear --m 1 16 --out $OUT/linear > $OUT/bench-linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | cut -c1-200
