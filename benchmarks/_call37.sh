# Session 10, call 8: 128-token tiles of the swapped kernel for 8-bit storage at 129-256 tokens; the int8 and fp8
# dispatch limits re-swept with them and written (the sweep checks every path against float64 as it times it)
export PYTHONPATH=$PWD/src
(cd benchmarks && timeout 230 python3 tune_dispatch.py --kinds int8 fp8 --write --budget-s 220 --out $OUT/dispatch-sweep.json > /tmp/d.log 2>&1); grep -a "limits\|wrote\|Error" /tmp/d.log | head
grep -a '"m": 256,\|"m": 512,' /tmp/d.log | cut -c1-300; cp src/lowbit/ops/weight_only_dispatch.json $OUT/
