# Session 20, call 4: the word GEMV reading x through act-order's permutation in place (no gather kernel at one token;
# the other paths gather x first): GPU tests, _exp_act_order.py against call 3's numbers, bench linear's act-order row.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_weight_only.py tests/test_gptq.py tests/test_ops_w4a16.py \
  -k "permutation or backward or act or g_idx or group_order or word_gemv" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
timeout 150 python3 benchmarks/_exp_act_order.py $OUT/act-order.json > $OUT/act-order.log 2>&1
echo "act-order rc=$? s=$SECONDS"; grep -a "^{\|Error" $OUT/act-order.log
timeout $((400 - SECONDS)) python3 -m lowbit.cli bench linear --m 1 16 256 4096 --out $OUT/linear > $OUT/bench-linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | cut -c1-220
rm -f $OUT/linear/*.png
