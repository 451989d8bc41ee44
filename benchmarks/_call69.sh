# Prepared in session 15 (not yet run): session 16's second device call. Where a step's GPU time goes now that the
# blocks replay as CUDA graphs (bf16, int8; the profile no longer counts the optimizer's range twice), and how far the
# step is from its kernels' sum (call 4: int8 329.6 ms a step, call 2: 321.8 ms of kernels launched one by one).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 400 python3 benchmarks/profile_train.py --precisions bf16 int8 --batch-size 16 --out $OUT > /dev/null 2>&1
echo "profiles rc=$? s=$SECONDS"; head -9 $OUT/profile-bf16.txt $OUT/profile-int8.txt
