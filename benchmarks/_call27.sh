# Session 9, call 1: the packed 4-bit codes of the swapped kernel on the GPU — tests, tiles, dispatch limits.
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/tests.txt
timeout 240 python3 -m pytest -q -x tests/test_ops_weight_only.py >> $OUT/tests.txt 2>&1; tail -3 $OUT/tests.txt
cd benchmarks
timeout 150 python3 tune_mma_swapped.py --ms 16 1 --budget-s 110 --out $OUT/mma-swapped.json > /tmp/t.log 2>&1; tail -8 /tmp/t.log | cut -c1-600
timeout 170 python3 tune_dispatch.py --kinds int4 --budget-s 120 --write --out $OUT/dispatch-sweep.json > /tmp/d.log 2>&1; tail -15 /tmp/d.log | cut -c1-300
cp ../src/lowbit/ops/weight_only_dispatch.json $OUT/
