# Session 21, call 3: the swapped kernel's H200 tiles past 16 tokens and the dequantize kernel's tile (call 2's sweeps),
# in the library: GPU tests, the dispatch re-swept for every kind (written to a copy of the package's file), then bench
# linear on those limits; then the swapped tiles again in the time left.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_weight_only.py > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
cp src/lowbit/ops/weight_only_dispatch.json $OUT/weight_only_dispatch.json
timeout 230 python3 -m lowbit.cli bench dispatch --budget-s 200 --write-to $OUT/weight_only_dispatch.json --out $OUT/dispatch > /tmp/dispatch.log 2>&1
echo "dispatch rc=$? s=$SECONDS"; grep -a "^| \(int\|fp8\|table\)\|Written\|budget\|Error" /tmp/dispatch.log | cut -c1-200
rm -f $OUT/dispatch/results.json
export LOWBIT_DISPATCH_FILE=$OUT/weight_only_dispatch.json
timeout $((590 - SECONDS)) python3 -m lowbit.cli bench linear --m 1 16 64 256 4096 --out $OUT/linear > $OUT/bench-linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | head -16 | cut -c1-220
rm -f $OUT/linear/results.json
# the decode attention on a long static cache with a short context, before its slices are interleaved (call 4: after)
timeout 60 python3 benchmarks/_exp_attention_splits.py /tmp/a.json 4096 130 | grep -a "^{"
timeout 60 python3 benchmarks/_exp_attention_splits.py /tmp/a.json 4096 3000 | grep -a "^{"
echo "attention s=$SECONDS"
# what time is left: the swapped kernel's tiles again, with the new heuristic as the baseline (2-3 stages, half K-steps)
timeout $((590 - SECONDS)) python3 benchmarks/_exp_swapped_tiles.py $OUT/swapped-tiles.json $((540 - SECONDS)) > /tmp/swapped-tiles.log 2>&1
echo "swapped rc=$? s=$SECONDS"; grep -a "^{" /tmp/swapped-tiles.log | python3 -c "
import sys, json
for l in sys.stdin:
    r = json.loads(l); r.pop('shapes', None); print(json.dumps(r))"
