# Session 10, call 4 (carry [".whl"]): bench linear at 1-4096 tokens with the peers, after the tables' `_lookup` and
# the re-swept dispatch limits (call 3); then bench generate 7B for bf16 / W4A16 / NF4 / bitsandbytes NF4.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/torchao-*.whl .whl/bitsandbytes-*.whl || exit  # the device README's way: no registry there
export PYTHONPATH=$PWD/src:/tmp/site
timeout 330 python3 -m lowbit.cli bench linear --m 1 16 32 64 256 4096 --out $OUT/linear > /tmp/linear.log 2>&1; echo "linear rc=$? s=$SECONDS"
grep -a "^|" /tmp/linear.log | cut -c1-260; rm -f $OUT/linear/speedup.png $OUT/linear/report.md
timeout $((570 - SECONDS)) python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 nf4 bnb-nf4 --out $OUT/generate > /tmp/g.log 2>&1
echo "generate rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/g.log | grep -a "^|" | tail -6 | cut -c1-250; rm -f $OUT/generate/*.png $OUT/generate/report.md
