# Session 12, call 2: warp-specialized INT8 matmuls (_exp_ws_mm.py) and a warp-specialized W4A16 kernel past 128
# tokens (_exp_ws_w4.py), both on sm_90 through Triton 3.6's tl.range(warp_specialize=True).
export PYTHONPATH=$PWD/src
timeout 300 python3 benchmarks/_exp_ws_mm.py --out $OUT/ws-mm.json 2>&1 | grep -v Warn | tail -12
timeout $((560 - SECONDS)) python3 benchmarks/_exp_ws_w4.py --out $OUT/ws-w4.json 2>&1 | grep -v Warn | grep -v '^{' | tail -8
echo "s=$SECONDS"
