# Session 10, call 3: code tables through tl.gather (`_lookup`) in every weight-only kernel, NF4 allowed into the word
# GEMV. GPU tests of the weight-only op, then the dispatch limits re-swept for every kind (the split-K sum of session 9
# and the tables' new paths) and written into the package's dispatch file.
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/tests.txt
timeout 230 python3 -m pytest -q --tb=line -rf tests/test_ops_weight_only.py tests/test_gpu.py >> $OUT/tests.txt 2>&1; tail -4 $OUT/tests.txt
(cd benchmarks && timeout 300 python3 tune_dispatch.py --write --budget-s 280 --out $OUT/dispatch-sweep.json > /tmp/d.log 2>&1); grep -a "limits\|wrote\|Error" /tmp/d.log | head; grep -a '"m": 1,\|"m": 16,' /tmp/d.log | cut -c1-300
cp src/lowbit/ops/weight_only_dispatch.json $OUT/
