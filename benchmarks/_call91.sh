# Prepared in session 19 after its device time was spent, neither run on a GPU:
# - lowbit's split-KV decode attention (ops.decode_attention, models.attention): its GPU tests and the generate
#   bench's, then `bench generate` on the 7B shape with transformers' SDPA (cuDNN: 8.3 µs a layer in session 19,
#   call 2) and with `--attention lowbit`, bf16 and W4A16 (session 18: 198.0 and 361.2 tok/s);
# - NF4's codes from registers in the swapped kernel (weight_only._packed_table, off: PACKED_TABLES): its GPU test,
#   then _exp_packed_tables.py at 2-16 tokens against the shared-memory gather (bench linear, 16 tokens: 0.83x bf16).
# If the packed tables win, set PACKED_TABLES = True and re-sweep the NF4 (table4) limits with `lowbit bench dispatch`
# (the words/swapped crossover at 2 tokens may move). Rename to _callNN.sh when run.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_decode_attention.py tests/test_bench_generate.py \
  tests/test_ops_weight_only.py -k "attention or generate or bench or table" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
for att in sdpa lowbit; do
  timeout 200 python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 --attention $att --out $OUT/generate-$att > $OUT/generate-$att.log 2>&1
  echo "generate $att rc=$? s=$SECONDS"; grep -a "tok/s" $OUT/generate-$att.log | cut -c1-220
done
timeout 90 python3 benchmarks/_exp_packed_tables.py $OUT/packed-tables.json > $OUT/packed-tables.log 2>&1
echo "packed tables rc=$? s=$SECONDS"; grep -a "^{" $OUT/packed-tables.log
timeout $((590 - SECONDS)) python3 benchmarks/profile_kernels.py --out $OUT/decode.json --decode w4a16-g128 --attention lowbit > $OUT/decode.log 2>&1
echo "profile rc=$? s=$SECONDS"; grep -v Warn $OUT/decode.log | head -14 | cut -c1-130
