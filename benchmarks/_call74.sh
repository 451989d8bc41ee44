# Session 17, call 1: session 16's prepared GPU tests (row_major_copy's empty tensor, the INT8/FP8 ops), the weight-only
# tests after the word GEMV's FFMA chains, the word GEMV before/after on the 7B shapes, then `lowbit bench linear` at 1, 16.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_int8.py tests/test_ops_fp8.py > $OUT/tests-8bit.txt 2>&1
echo "tests 8-bit rc=$? s=$SECONDS"; tail -2 $OUT/tests-8bit.txt
timeout 200 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_weight_only.py > $OUT/tests-weight-only.txt 2>&1
echo "tests weight-only rc=$? s=$SECONDS"; tail -2 $OUT/tests-weight-only.txt
timeout 240 python3 benchmarks/_exp_words_chain.py --out $OUT/words-chain.json > $OUT/words-chain.log 2>&1
echo "chain rc=$? s=$SECONDS"; cut -c1-400 $OUT/words-chain.log | tail -14
timeout $((560 - SECONDS)) python3 -m lowbit.cli bench linear --m 1 16 --out $OUT/linear > $OUT/bench-linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | cut -c1-160
