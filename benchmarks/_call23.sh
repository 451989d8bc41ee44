# session 7, call 4, on an NVIDIA H200, short (the session's last device minutes): which layer makes
# tests/test_gpu.py's GPT-2 quantize check fail on CUDA; the code-table (NF4) dispatch measured again after the
# pair table was reverted (it was 2-8x slower on the GPU: call 3); the weight-only table tests; bench linear.
export PYTHONPATH=$PWD/src
timeout 60 python3 benchmarks/diagnose_gpt2_cuda.py 2>&1 | grep -v Warning | cut -c1-400
(cd benchmarks && timeout 60 python3 tune_dispatch.py --kinds table4 --write --budget-s 45 --out $OUT/dispatch-table4.json > /tmp/d.log 2>&1)
echo "rc=$? s=$SECONDS"; grep -a "limits\|wrote\|Error" /tmp/d.log | cut -c1-200; cp src/lowbit/ops/weight_only_dispatch.json $OUT/
timeout 40 python3 -m pytest -q tests/test_ops_weight_only.py -k "table or nf4 or values or dispatch" > $OUT/tests.txt 2>&1; tail -1 $OUT/tests.txt
timeout $((225 - SECONDS)) python3 -m lowbit.cli bench linear --peers --out $OUT/linear > /tmp/linear.log 2>&1
echo "rc=$? s=$SECONDS"; grep -a "^|" /tmp/linear.log | cut -c1-200; rm -f $OUT/linear/*.png $OUT/linear/report.md
