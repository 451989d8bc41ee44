# Session 20, call 5: act-order's gather in a compiled step, in the GEMV or before the op (_exp_act_order_compiled.py).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 200 python3 benchmarks/_exp_act_order_compiled.py $OUT/act-order-compiled.json > $OUT/act-order-compiled.log 2>&1
echo "rc=$? s=$SECONDS"; grep -a "^{\|Error" $OUT/act-order-compiled.log | cut -c1-300
