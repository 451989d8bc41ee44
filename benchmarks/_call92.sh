# Session 20, call 2: q/k/v and gate/up fused in bench generate (models.fuse, the default now) with lowbit's decode
# attention; the attention's k loads no longer wait on the mask (its slices timed alone); NF4's dispatch limits
# re-swept with the register lookups on (PACKED_TABLES); the GPU tests of all three.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_decode_attention.py tests/test_bench_generate.py \
  tests/test_models_fuse.py tests/test_ops_weight_only.py -k "attention or generate or fuse or table or lut or nf4 or dispatch" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
timeout 60 python3 benchmarks/_exp_attention_splits.py $OUT/attention-splits.json 2>&1 | grep -a "^{\|Error"
echo "splits s=$SECONDS"
cp src/lowbit/ops/weight_only_dispatch.json $OUT/weight_only_dispatch.json
timeout 150 python3 -m lowbit.cli bench dispatch --kinds table4 --budget-s 100 --write-to $OUT/weight_only_dispatch.json --out $OUT/dispatch > $OUT/dispatch.log 2>&1
echo "dispatch rc=$? s=$SECONDS"; grep -a "table4\|Written" $OUT/dispatch.log | tail -14 | cut -c1-200
rm -f $OUT/dispatch/results.json $OUT/dispatch/paths.png
timeout 260 python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 w8a16 nf4 --attention lowbit --out $OUT/generate > /dev/null 2>&1
echo "generate rc=$? s=$SECONDS"; grep -a "^| 7b" $OUT/generate/report.md | cut -c1-200
rm -f $OUT/generate/tokens_per_s.png
timeout $((585 - SECONDS)) python3 benchmarks/profile_kernels.py --out /tmp/decode.json --decode w4a16-g128 --attention lowbit > $OUT/decode.log 2>&1
echo "profile rc=$? s=$SECONDS"; grep -v Warn $OUT/decode.log | grep -a "µs" | head -16 | cut -c1-130
