# Session 23, call 5: the weight-only GPU tests call 4's timeout cut (the file's tail), and the GPU tests of the layers
# and GPTQ (act-order through the op's new dispatch)
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 120 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_weight_only.py \
  -k "split_k_sums or tall_tiles or refuses or tables_changed or tables_match or table_pairs_ptx or table_words or packed_tables" > $OUT/tests-tail.txt 2>&1
echo "tail rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests-tail.txt | head -10
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_gpu.py tests/test_gptq.py tests/test_layers.py -k "perm or act_order or order or cuda" > $OUT/tests-layers.txt 2>&1
echo "layers rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests-layers.txt | head -10
