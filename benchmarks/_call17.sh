# session 6, call 5 (carry [".whl"]): GPU tests of the weight-only op after the dispatch change (swapped MMA
# kernel for 3-256 tokens, word GEMV tiles), then bench linear and bench generate with the peers side by side
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/torchao-*.whl .whl/bitsandbytes-*.whl || exit  # the device README's way: no registry there
export PYTHONPATH=$PWD/src:/tmp/site
timeout 120 python3 -m pytest -q tests/test_ops_weight_only.py tests/test_bench_linear.py > $OUT/tests.txt 2>&1; tail -2 $OUT/tests.txt
timeout 200 python3 -m lowbit.cli bench linear --out $OUT/linear > $OUT/linear.log 2>&1
echo "rc=$? s=$SECONDS"; tail -14 $OUT/linear.log | cut -c1-200
timeout $((580 - SECONDS)) python3 -m lowbit.cli bench generate --models 7b 13b --schemes bf16 w8a16 w4a16-g128 nf4 w8a8-int8 fp8 \
  w8a8-fp8 torchao-int4 bnb-nf4 --out $OUT/generate > $OUT/generate.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < $OUT/generate.log | grep -a "|" | tail -22 | cut -c1-180
