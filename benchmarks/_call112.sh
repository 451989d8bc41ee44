# Session 24, call 2 (carry [".whl"]), on the H100: bench generate 7B by the limits call 1 measured (now the package's
# H100 entry), with bitsandbytes NF4 beside; the word GEMV's tiles at one token on this GPU (they were chosen on the
# H200; W8A16 is 1.86x of the 1.9x target); then the weight-only op's GPU tests here (sessions 7-23 ran them on H200s
# only). One tar, as in call 1.
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/torchao-*.whl .whl/bitsandbytes-*.whl || exit
export PYTHONPATH=$PWD/src:$PWD/benchmarks:/tmp/site
R=/tmp/r; mkdir -p $R
keep() { tar -C $R -cf $OUT/results.tar .; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee $R/gpu.txt
timeout 230 python3 -m lowbit.cli bench generate --models 7b --schemes bf16 w4a16-g128 w8a16 nf4 bnb-nf4 --out $R/generate > $R/generate.log 2>&1
echo "generate rc=$? s=$SECONDS"; keep; grep -a "^| 7b" $R/generate/report.md | cut -c1-220
timeout 120 python3 benchmarks/_exp_words_chain.py --out $R/words-tiles.json > $R/words-tiles.log 2>&1
echo "words tiles rc=$? s=$SECONDS"; keep; grep -a "^{" $R/words-tiles.log | cut -c1-400
timeout $((560 - SECONDS)) python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_weight_only.py tests/test_gpu.py > $R/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; keep; grep -a "passed\|failed\|FAILED\|Error" $R/tests.txt | head -12
