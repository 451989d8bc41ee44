# Session 9, call 4: host overhead of the eager op; bench linear and generate on the final kernels.
export PYTHONPATH=$PWD/src
(cd benchmarks && timeout 90 python3 host_overhead.py --out $OUT/host-overhead.json > /tmp/h.log 2>&1); head -4 /tmp/h.log | cut -c1-400; grep -a -A 18 "tottime" /tmp/h.log | cut -c1-160
timeout 150 python3 -m lowbit.cli bench linear --out $OUT/linear > /tmp/linear.log 2>&1; grep -a "^|" /tmp/linear.log | cut -c1-200
timeout $((560 - SECONDS)) python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 w8a16 --out $OUT/generate > /tmp/g.log 2>&1
tr '\r' '\n' < /tmp/g.log | grep -a "^|" | tail -4 | cut -c1-250; rm -f $OUT/*/*.png $OUT/*/report.md
