# Session 22, call 6: the act-order gather's final tile (one row a program): its GPU tests and bench linear
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 60 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_weight_only.py -k "gather or permutation" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -10
timeout $((280 - SECONDS)) python3 -m lowbit.cli bench linear --m 1 16 32 64 128 256 4096 --out $OUT/linear > /dev/null 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | head -16 | cut -c1-300
