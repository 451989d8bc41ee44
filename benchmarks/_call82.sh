# Session 18, call 5: the few-token word GEMV (benchmarks/_exp_tokens.py) against the swapped kernel at 2-16 tokens,
# and its GPU tests.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 60 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_weight_only.py -k "few_token" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -10
timeout $((330 - SECONDS)) python3 benchmarks/_exp_tokens.py --out $OUT/tokens.json > $OUT/tokens.log 2>&1
echo "tokens rc=$? s=$SECONDS"; cut -c1-400 $OUT/tokens.log
