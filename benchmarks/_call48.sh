# Session 12, call 5: stream-K for the INT8 TMA matmul: its GPU tests, then its speed on the weight-gradient shapes.
export PYTHONPATH=$PWD/src
timeout 60 python3 -m pytest -q --tb=short -rf tests/test_ops_int8.py -k "tma or stream_k" -p no:logging 2>&1 | tail -3
timeout 100 python3 benchmarks/_exp_stream_k.py --out $OUT/stream-k.json 2>&1 | grep -v Warn | tail -6
echo "s=$SECONDS"
