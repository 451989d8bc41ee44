# Session 17, call 2: the word GEMV with the whole next step in flight (PREFETCH 2) on the 7B shapes, against the kernel
# before session 17 and the floor of a pure read of the same bytes.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 400 python3 benchmarks/_exp_words_chain.py --out $OUT/words-chain.json > $OUT/words-chain.log 2>&1
echo "chain rc=$? s=$SECONDS"; tail -3 $OUT/words-chain.log | cut -c1-300
