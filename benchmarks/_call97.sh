# Session 21, call 2: the swapped kernel's tiles at 64-256 tokens; the dequantize kernel's tile.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 150 python3 benchmarks/_exp_dequant_tiles.py $OUT/dequant-tiles.json > $OUT/dequant-tiles.log 2>&1
echo "dequant rc=$? s=$SECONDS"; grep -a "^{\|Error" $OUT/dequant-tiles.log | cut -c1-330
timeout 360 python3 benchmarks/_exp_swapped_tiles.py $OUT/swapped-tiles.json 300 > $OUT/swapped-tiles.log 2>&1
echo "swapped rc=$? s=$SECONDS"; grep -a "^{\|Error" $OUT/swapped-tiles.log | python3 -c "
import sys, json
for l in sys.stdin:
    try: r = json.loads(l)
    except Exception: print(l[:300]); continue
    r.pop('shapes', None); print(json.dumps(r))"
