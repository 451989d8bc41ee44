# session 6, call 7: bench generate with each decoder layer compiled for the decode step (7B; bf16, W4A16, W8A16)
export PYTHONPATH=$PWD/src
timeout 280 python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 w8a16 --compile \
  --out $OUT/generate > $OUT/generate.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < $OUT/generate.log | grep -a -E "^\||tok/s|FAILED|Error" | tail -12 | cut -c1-220
