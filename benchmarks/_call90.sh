# Session 19, call 8: the outlier product in two round trips before its store (count, first columns and scales
# together; out's tile with the gathers): GPU tests, the LLM.int8() kernels with 8 and 0 outlier columns.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 80 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_outliers.py tests/test_layers.py -k "outlier or find or llm_int8" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -10
timeout 45 python3 benchmarks/profile_kernels.py --out $OUT/profile8.json --linear "LLM.int8() (Triton)" --tokens 256 4096 --outlier-cols 8 > $OUT/profile8.log 2>&1
echo "profile8 rc=$? s=$SECONDS"; grep -v Warn $OUT/profile8.log | cut -c1-120
timeout 45 python3 benchmarks/profile_kernels.py --out $OUT/profile0.json --linear "LLM.int8() (Triton)" --tokens 256 4096 > $OUT/profile0.log 2>&1
echo "profile0 rc=$? s=$SECONDS"; grep -v Warn $OUT/profile0.log | grep "graph\|outlier_mm" | cut -c1-120
