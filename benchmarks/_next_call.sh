# Prepared in session 19 after its device time was spent: lowbit's split-KV decode attention (ops.decode_attention,
# models.attention), never run on a GPU. Its GPU tests and the generate bench's, then `bench generate` on the 7B shape
# with transformers' SDPA (cuDNN: 8.3 µs a layer in session 19, call 2) and with `--attention lowbit`, bf16 and W4A16
# (session 18: 198.0 and 361.2 tok/s). Rename to _callNN.sh when run.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_decode_attention.py tests/test_bench_generate.py > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
for att in sdpa lowbit; do
  timeout 200 python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 --attention $att --out $OUT/generate-$att > $OUT/generate-$att.log 2>&1
  echo "generate $att rc=$? s=$SECONDS"; grep -a "tok/s" $OUT/generate-$att.log | cut -c1-220
done
timeout $((590 - SECONDS)) python3 benchmarks/profile_kernels.py --out $OUT/decode.json --decode w4a16-g128 --attention lowbit > $OUT/decode.log 2>&1
echo "profile rc=$? s=$SECONDS"; grep -v Warn $OUT/decode.log | head -14 | cut -c1-130
