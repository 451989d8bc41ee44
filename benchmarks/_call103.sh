# Session 22, call 4: GPU tests of act-order's gather, the packed codes on gathered x (XPERM) and the NF4 options, then
# bench linear with them (64 and 128 tokens added)
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_weight_only.py \
  -k "packed or gather or permutation or swapped_config or folded or tables_match or bad_perm" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -20
timeout $((420 - SECONDS)) python3 -m lowbit.cli bench linear --m 1 16 32 64 128 256 4096 --out $OUT/linear > /dev/null 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | head -16 | cut -c1-300
