# Session 9, call 5: PDL in the word GEMV, the op's eager bypass and backward — GPU tests; host overhead; bench linear and generate.
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/tests.txt
timeout 200 python3 -m pytest -q -x tests/test_ops_weight_only.py >> $OUT/tests.txt 2>&1; tail -3 $OUT/tests.txt
(cd benchmarks && timeout 60 python3 host_overhead.py --out $OUT/host-overhead.json > /tmp/h.log 2>&1); head -3 /tmp/h.log | cut -c1-500
timeout 150 python3 -m lowbit.cli bench linear --out $OUT/linear > /tmp/linear.log 2>&1; grep -a "^|" /tmp/linear.log | cut -c1-200
timeout $((570 - SECONDS)) python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 --out $OUT/generate > /tmp/g.log 2>&1
tr '\r' '\n' < /tmp/g.log | grep -a "^|" | tail -3 | cut -c1-250; rm -f $OUT/*/*.png $OUT/*/report.md
