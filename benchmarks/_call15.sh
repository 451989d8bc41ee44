# session 6, call 3: the word GEMV with prefetch and split-K (tests, then the sweep)
export PYTHONPATH=$PWD/src
timeout 100 python3 -m pytest -q -x tests/test_ops_weight_only.py -k "word_gemv" > $OUT/tests.txt 2>&1; tail -2 $OUT/tests.txt
cd benchmarks && timeout $((560 - SECONDS)) python3 tune_words_split.py --out $OUT/words-split.json --budget-s $((470 - SECONDS)) 2>&1 | cut -c1-600
