# session 6, call 4: the swapped-operand MMA kernel (GPU tests, then its sweep at 4-256 tokens)
export PYTHONPATH=$PWD/src
timeout 90 python3 -m pytest -q -x tests/test_ops_weight_only.py -k "swapped or word_gemv" > $OUT/tests.txt 2>&1; tail -2 $OUT/tests.txt
cd benchmarks && timeout $((560 - SECONDS)) python3 tune_mma_swapped.py --out $OUT/mma-swapped.json --budget-s $((480 - SECONDS)) 2>&1 | python3 -c "
import json, sys
for line in sys.stdin:
    try: r = json.loads(line)
    except ValueError: print(line[:300], end=''); continue
    b = r['best'][0] if r['best'] else [None, None, None]
    print(r['scheme'], r['k'], r['n'], r['m'], 'bf16 %.1f dispatch %.1f mma %s best %s %s err %s' % (r['bf16_us'], r['dispatch_us'], round(r.get('mma_words_us', 0), 1), b[0] and round(b[0], 1), b[1], b[2] and '%.1e' % b[2]))
"
