# Prepared in session 15 after its device time was spent (CPU only, not yet run): session 16's first device call.
# 1. GPU tests changed after session 15's last call: the CUDA-graph training test as rewritten after call 5 (no
#    gradient accumulation with graphs; accumulation launching one by one), now for every precision (int8-weight's
#    optimizer updates int8 buffers in place between replays; FP8 through cuBLAS), the SiLU gradients' new tiles.
# 2. Where the GPU time of a step goes now that the blocks replay as CUDA graphs (bf16, int8), and the fused MLP on
#    its new tiles (its kernels were 343.8 ms against 330.0 unfused in session 15's call 2).
# 3. Whether one stacked q/k/v weight gradient beats three (benchmarks/_exp_qkv_grad_weight.py): the case for a
#    fused q/k/v training linear.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 240 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_train_loop.py tests/test_train_mlp.py \
  -k "cuda_graphs or gpu" > $OUT/tests.txt 2>&1; echo "tests rc=$? s=$SECONDS"; tail -4 $OUT/tests.txt
timeout 60 python3 benchmarks/_exp_qkv_grad_weight.py --out $OUT/qkv-grad-weight.json 2>&1 | grep -v Warn
timeout 270 python3 benchmarks/profile_train.py --precisions bf16 int8 --batch-size 16 --out $OUT > /dev/null 2>&1
echo "profiles s=$SECONDS"; head -9 $OUT/profile-bf16.txt $OUT/profile-int8.txt
if [ $SECONDS -lt 440 ]; then  # else in a second call
  timeout $((590 - SECONDS)) python3 benchmarks/profile_train.py --precisions int8 --batch-size 16 --fuse-mlp --out $OUT \
    > /dev/null 2>&1; echo "fused s=$SECONDS"; head -9 $OUT/profile-int8-fused-mlp.txt
fi
