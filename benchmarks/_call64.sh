# Session 15, call 2: call 1's bench train gave int8 365 ms (session 14 call 4: 343) and fp8-rowwise 385 (365), bf16
# 415 (411). A/B in one run: int8 with the current src, and with the src of 7bab3a1 (session 14 call 4's, before the
# producer passes) plus today's matmul (split-K out), benchmarks/_ab/old. Then the profiles of item 4 of session 14's
# _next_call.sh (int8 unfused and with the fused MLP: kernel time, unprofiled wall time, host ops), then the GPU tests
# of call 1 (they ran out of their 120 s there, ~70 of 72 passed).
# benchmarks/_ab/old was made before the call, and deleted after it, by:
#   git archive 7bab3a1 src/lowbit | tar -x -C /tmp && mkdir -p benchmarks/_ab && mv /tmp/src benchmarks/_ab/old \
#     && cp src/lowbit/ops/int8_hopper.py benchmarks/_ab/old/lowbit/ops/
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,power.limit --format=csv,noheader
bt="python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 16 --steps 6"
timeout 150 $bt --precisions bf16 int8 --out $OUT/train-new > /tmp/new.log 2>&1
echo "new rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/new.log | grep -a "|\|Error" | tail -4
PYTHONPATH=$PWD/benchmarks/_ab/old:$PWD/benchmarks timeout 100 $bt --precisions int8 --out $OUT/train-old > /tmp/old.log 2>&1
echo "old rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/old.log | grep -a "|\|Error" | tail -3
rm -f $OUT/train-*/*.png
timeout 140 python3 benchmarks/profile_train.py --precisions int8 --batch-size 16 --out $OUT > /dev/null 2>&1
timeout 140 python3 benchmarks/profile_train.py --precisions int8 --batch-size 16 --fuse-mlp --out $OUT > /dev/null 2>&1
echo "profiles s=$SECONDS"; head -9 $OUT/profile-int8.txt $OUT/profile-int8-fused-mlp.txt; grep -A8 "^host" $OUT/profile-int8*.txt
timeout $((585 - SECONDS)) python3 -m pytest -q --tb=short -rf -p no:logging --durations=8 tests/test_ops_rows_cols.py \
  tests/test_train_mlp.py > $OUT/tests.txt 2>&1; echo "tests rc=$? s=$SECONDS"; tail -14 $OUT/tests.txt
