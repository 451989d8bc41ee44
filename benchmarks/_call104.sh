# Session 22, call 5: the act-order gather's tiles at 1-4096 tokens against index_select
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 200 python3 benchmarks/_exp_gather_tiles.py $OUT/gather-tiles.json 2>&1 | grep -a "^{\|Error\|error"
echo "gather s=$SECONDS"
