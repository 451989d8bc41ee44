# Session 20, call 3: GPTQ act-order in group order (IntWeightLinear.perm, x gathered) against the g_idx path it
# replaces (ops.w4a16's MMA kernel at every token count); its GPU tests; bench linear with its new act-order row and
# NF4's register lookups (PACKED_TABLES).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_gptq.py tests/test_bench_linear.py tests/test_ops_w4a16.py \
  -k "act_order or g_idx or group_order or act or linear or kernel" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
timeout 150 python3 benchmarks/_exp_act_order.py $OUT/act-order.json > $OUT/act-order.log 2>&1
echo "act-order rc=$? s=$SECONDS"; grep -a "^{\|Error" $OUT/act-order.log
timeout $((580 - SECONDS)) python3 -m lowbit.cli bench linear --m 1 16 256 4096 --out $OUT/linear > $OUT/bench-linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | cut -c1-220
rm -f $OUT/linear/*.png
