# Session 23, call 3: the group scales folded into the packed codes by a packed product (`_scaled_pairs`), and the GPU
# tests of this session's changes (the word GEMV's row offsets by default, act-order gathered into the packed order,
# the packed fold)
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 260 python3 benchmarks/_exp_packed_fold.py $OUT/packed-fold.json 2>&1 | grep -a "^{\|Error\|error"
echo "packed fold s=$SECONDS"
timeout 240 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_weight_only.py \
  -k "fold or gather or permutation or x_given or packed or swapped_config" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -10
