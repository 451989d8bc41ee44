# session 8, call 2, on an NVIDIA H200: the word GEMV's new tiles (call 1's sweep: V = 2 words a column, prefetched)
# through the GPU tests, the dispatch sweep (writes this GPU's limits before the benches read them), bench linear and
# bench generate 7b.
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/tests.txt
timeout 130 python3 -m pytest -q tests/test_ops_weight_only.py tests/test_ops_fp8.py >> $OUT/tests.txt 2>&1; tail -2 $OUT/tests.txt
(cd benchmarks && timeout 150 python3 tune_dispatch.py --write --budget-s 120 --out $OUT/dispatch-sweep.json > /tmp/d.log 2>&1)
echo "rc=$? s=$SECONDS"; grep -a "limits\|wrote\|Error" /tmp/d.log | cut -c1-200; cp src/lowbit/ops/weight_only_dispatch.json $OUT/
timeout $((400 - SECONDS)) python3 -m lowbit.cli bench linear --out $OUT/linear > /tmp/linear.log 2>&1
echo "rc=$? s=$SECONDS"; grep -a "^|" /tmp/linear.log | cut -c1-200
timeout $((585 - SECONDS)) python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 w8a16 fp8 \
  --out $OUT/generate > /tmp/generate.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/generate.log | grep -a "^|" | tail -6 | cut -c1-200
rm -f $OUT/*/*.png $OUT/generate/report.md $OUT/linear/report.md
find $OUT -type f | sort
