# Session 19, call 5: the ping-pong test with its tolerance from bf16's rounding; where `find`'s 6.5 µs go
# (_exp_find.py); the decode step's attention implementations (_exp_decode_attention.py, fixed: the cache's own
# position counter ran past its 256 slots in call 4).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 60 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_int8.py -k "pingpong" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -10
timeout 120 python3 benchmarks/_exp_find.py $OUT/find.json > $OUT/find.log 2>&1
echo "find rc=$? s=$SECONDS"; grep -a "^{" $OUT/find.log | cut -c1-2500
timeout $((500 - SECONDS)) python3 benchmarks/_exp_decode_attention.py $OUT/attention.json > $OUT/attention.log 2>&1
echo "attention rc=$? s=$SECONDS"; grep -a "^sdpa\|^eager" $OUT/attention.log | cut -c1-1500
