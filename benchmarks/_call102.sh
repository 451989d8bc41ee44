# Session 22, call 3: act-order's x gathered by one kernel (and NF4's folded scales at 65-128 tokens), then the swapped
# kernel's packed codes on tall tiles with x gathered into their K order
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 220 python3 benchmarks/_exp_act_order_gather.py $OUT/act-order-gather.json 2>&1 | grep -a "^{\|Error\|error"
echo "act-order s=$SECONDS"
timeout $((560 - SECONDS)) python3 benchmarks/_exp_swapped_xorder.py $OUT/swapped-xorder.json 2>&1 | grep -a "^{\|Error\|error"
echo "xorder s=$SECONDS"
