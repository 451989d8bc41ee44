# Session 17, call 3: GPU tests of LLM.int8()'s capturable decode path and of the word GEMV's new tiles (PREFETCH 2);
# `lowbit bench linear` at 1-4096 tokens (new tiles, LLM.int8() row); `lowbit bench dispatch` re-sweeping the H200's
# limits into a copy of the package's file; `lowbit bench generate` 7B bf16 / W4A16 with what time is left.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_gpu.py tests/test_ops_weight_only.py \
  -k "llm_int8 or layer_on_cuda or word_gemv" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; tail -2 $OUT/tests.txt
timeout 170 python3 -m lowbit.cli bench linear --m 1 16 256 4096 --out $OUT/linear > $OUT/bench-linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | cut -c1-200
cp src/lowbit/ops/weight_only_dispatch.json $OUT/weight_only_dispatch.json
timeout 200 python3 -m lowbit.cli bench dispatch --budget-s 150 --write-to $OUT/weight_only_dispatch.json --out $OUT/dispatch > $OUT/bench-dispatch.log 2>&1
echo "dispatch rc=$? s=$SECONDS"; grep -a "≤" $OUT/dispatch/report.md
timeout $((585 - SECONDS)) python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 --out $OUT/generate > $OUT/bench-generate.log 2>&1
echo "generate rc=$? s=$SECONDS"; grep -a "^| " $OUT/generate/report.md | cut -c1-200 | head -8
