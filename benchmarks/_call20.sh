# session 7, call 1 (carry [".whl"]), on an NVIDIA H200: the calls session 6 prepared (word GEMV subnormal codes,
# swapped MMA kernel for NF4 tables and FP8 values), run as `bash benchmarks/_call20.sh` after an nvidia-smi query.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/torchao-*.whl .whl/bitsandbytes-*.whl || exit  # the device README's way: no registry there
export PYTHONPATH=$PWD/src:/tmp/site
timeout 120 python3 -m pytest -q tests/test_ops_weight_only.py > $OUT/tests.txt 2>&1; tail -2 $OUT/tests.txt
timeout $((330 - SECONDS)) python3 -m lowbit.cli bench linear --out $OUT/linear > $OUT/linear.log 2>&1
echo "rc=$? s=$SECONDS"; grep -a "^|" $OUT/linear.log | cut -c1-200
timeout $((580 - SECONDS)) python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 w8a16 nf4 fp8 bnb-nf4 \
  --out $OUT/generate > $OUT/generate.log 2>&1  # decoder layers compiled (the default on CUDA)
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < $OUT/generate.log | grep -a "^|" | tail -8 | cut -c1-200
# a second call: taller tiles for the swapped kernel at 128-256 tokens (weight-only is 0.5x bf16 at 256)
#   cd benchmarks && python3 tune_mma_swapped.py --ms 128 256 --out $OUT/mma-swapped-tall.json --budget-s 400
