# Prepared in session 7, NOT yet run: what the next device call should do first (carry [".whl"] for the peers).
# 1. The GPU tests, test_gpu.py above all: its GPT-2 check failed in session 7's call 3 (8-bit Conv1D weights held
#    transposed, read as garbage by the kernels); the fix (any layout in the kernels, row-major codes in the layers)
#    was tested on the CPU only.
# 2. The dispatch and word-GEMV sweeps again, now reading weights from memory rather than the L2 (sweep.cold_copies):
#    session 7's limits and tile were timed on L2-resident weights. --write updates this GPU's dispatch limits.
# 3. bench linear and generate on the result.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/torchao-*.whl .whl/bitsandbytes-*.whl || exit  # the device README's way: no registry there
export PYTHONPATH=$PWD/src:/tmp/site
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/tests.txt
timeout 150 python3 -m pytest -q tests/test_gpu.py tests/test_ops_weight_only.py >> $OUT/tests.txt 2>&1; tail -2 $OUT/tests.txt
(cd benchmarks && timeout 200 python3 tune_dispatch.py --write --budget-s 180 --out $OUT/dispatch-sweep.json > /tmp/d.log 2>&1)
echo "rc=$? s=$SECONDS"; grep -a "limits\|wrote\|Error" /tmp/d.log; cp src/lowbit/ops/weight_only_dispatch.json $OUT/
(cd benchmarks && timeout 60 python3 tune_words_split.py --schemes int4-g128-zero --splits 1 \
  --tiles 8x128x4 8x256x8 8x512x8 --budget-s 45 --out $OUT/words.json > /tmp/w.log 2>&1); tail -3 /tmp/w.log | cut -c1-300
timeout $((560 - SECONDS)) python3 -m lowbit.cli bench linear --out $OUT/linear > /tmp/linear.log 2>&1
echo "rc=$? s=$SECONDS"; grep -a "^|" /tmp/linear.log | cut -c1-200; rm -f $OUT/linear/*.png $OUT/linear/report.md
# a second call: bench generate --models 7b --schemes bf16 w4a16-g128 w8a16 nf4 fp8 bnb-nf4 --out $OUT/generate
