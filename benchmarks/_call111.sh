# Session 23, call 6 (prepared; run if the device time allows): act-order's gather with whole rows a program
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 150 python3 benchmarks/_exp_gather_rows.py $OUT/gather-rows.json 2>&1 | grep -a "^{\|Error\|error"
echo "gather rows s=$SECONDS"
