# session 8, call 3, on an NVIDIA H200: the FP8 tests that calls 1-2 did not reach (their time limit); the word GEMV
# around call 1's best tile (V = 2-4 words a column, prefetched, wider steps and more warps, split-K 2), for int4
# with and without zero points and FP8 values, weights read from memory.
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/tests.txt
timeout 100 python3 -m pytest -q tests/test_ops_fp8.py >> $OUT/tests.txt 2>&1; tail -2 $OUT/tests.txt
(cd benchmarks && timeout 230 python3 tune_words_split.py --schemes int4-g128-zero int4-g128 e4m3-channel --splits 1 2 \
  --vs 2 4 --prefetch 1 --tiles 8x256x4 8x512x8 16x256x8 8x256x8 4x256x4 8x128x2 --budget-s 200 --out $OUT/words.json > /tmp/w.log 2>&1)
echo "rc=$? s=$SECONDS"; grep -a "best" /tmp/w.log | python3 -c "
import sys, json
for l in sys.stdin:
    d = json.loads(l); print(d['scheme'], d['k'], d['n'], 'bf16 %.2f default %.2f' % (d['bf16_us'], d['default_us']), [('%.2f' % u, c) for u, c in d['best'][:3]])"
