# Session 24, call 3, on the H100: the word GEMV's tiles at one token again, now that the script's bare-read kernel is
# masked (call 2 stopped at 11008 → 4096): every storage, above all int8 and FP8 (W8A16 is 1.86x of the 1.9x target)
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 230 python3 benchmarks/_exp_words_chain.py --out $OUT/words-tiles.json > $OUT/words-tiles.log 2>&1
echo "words tiles rc=$? s=$SECONDS"; grep -a "Error" $OUT/words-tiles.log | head -3
python3 - $OUT/words-tiles.json <<'P'
import json, sys
d = json.load(open(sys.argv[1]))
for r in d["rows"]:
    t = {k: v["us"] for k, v in r.items() if isinstance(v, dict) and "us" in v and k.startswith("new")}
    best = min(t, key=t.get)
    print(r["scheme"], r["k"], r["n"], f"bf16 {r['bf16_us']:.2f}", f"default {t['new default']:.2f}", f"best {best} {t[best]:.2f}")
P
