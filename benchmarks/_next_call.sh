# Prepared in session 14 after its device time was spent (CPU only, not yet run): session 15's first device call.
# Its timeouts sum to 910 s: split it into two calls (1-3, then 4).
# 1. GPU tests of what changed after the last call: the producer passes' fp32 cases (a test-side fix), their new
#    tiles (4 and 8 warps for the SiLU gradients: on 2 the absmax pass spilled), the fused MLP.
# 2. The producer passes' tilings (benchmarks/_exp_producer_tiles.py) against the plain passes' ~3.1 TB/s.
# 3. bench train, four precisions, on the final code: split-K out and the fused MLP off, which no full run has had
#    (session 14's call 4 ran split-K on the 144-tile weight gradients, +2.5 ms a step).
# 4. profile_train with and without the fused MLP: kernel time, unprofiled wall time and the host's top ops, for the
#    39 ms a step of GPU idle that the fused MLP brought in session 14's call 5 (one layer alone showed none).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 120 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_rows_cols.py tests/test_train_mlp.py \
  > $OUT/tests.txt 2>&1; echo "tests rc=$? s=$SECONDS"; tail -4 $OUT/tests.txt
timeout 90 python3 benchmarks/_exp_producer_tiles.py --out $OUT/producer-tiles.json 2>&1 | grep -v Warn | cut -c1-700
echo "s=$SECONDS"
timeout 300 python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 16 --steps 6 \
  --precisions bf16 int8 fp8-rowwise fp8-tensorwise --out $OUT/train > /tmp/train.log 2>&1
echo "train rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/train.log | grep -a "|\|Error" | tail -7
rm -f $OUT/train/*.png
timeout 200 python3 benchmarks/profile_train.py --precisions int8 --batch-size 16 --out $OUT > /dev/null 2>&1
timeout 200 python3 benchmarks/profile_train.py --precisions int8 --batch-size 16 --fuse-mlp --out $OUT > /dev/null 2>&1
echo "profiles s=$SECONDS"; head -9 $OUT/profile-int8.txt $OUT/profile-int8-fused-mlp.txt; grep -A8 "^host" $OUT/profile-int8*.txt
