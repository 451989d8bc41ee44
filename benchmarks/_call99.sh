# Session 21, call 4 (the last few device minutes): the GPU tests call 3's timeout cut (the swapped kernel's split-K,
# tall 8-bit tiles, tables), the decode attention with interleaved slices on a 4096-slot cache, and the int8 / FP8
# dispatch re-swept with 64-column K-steps past 64 tokens.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 60 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_weight_only.py tests/test_decode_attention.py \
  -k "split_k_sums or tall_tiles or tables or refuses_what or kernel_matches or fully_masked or bad_shapes" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -10
timeout 30 python3 benchmarks/_exp_attention_splits.py /tmp/a.json 4096 130 | grep -a "^{"
timeout 30 python3 benchmarks/_exp_attention_splits.py /tmp/a.json 256 130 | grep -a "^{"
echo "attention s=$SECONDS"
cp src/lowbit/ops/weight_only_dispatch.json $OUT/weight_only_dispatch.json
timeout $((170 - SECONDS)) python3 -m lowbit.cli bench dispatch --kinds int8 fp8 --budget-s $((150 - SECONDS)) --write-to $OUT/weight_only_dispatch.json --out $OUT/dispatch > /tmp/dispatch.log 2>&1
echo "dispatch rc=$? s=$SECONDS"; grep -a "^| \(int\|fp8\)\|Written\|budget\|Error" /tmp/dispatch.log | cut -c1-200
rm -f $OUT/dispatch/results.json
