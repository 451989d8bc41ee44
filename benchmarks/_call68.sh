# Prepared in session 15 (CPU only); session 16's first device call (call 68);
# `_call69.sh` is the second.
# 1. GPU tests changed after session 15's last call: the CUDA-graph training test as rewritten after call 5 (no
#    gradient accumulation with graphs; accumulation launching one by one), now for every precision (int8-weight's
#    optimizer updates int8 buffers in place between replays; FP8 through cuBLAS), the SiLU gradients' new tiles.
# 2. Whether one stacked q/k/v weight gradient beats three (benchmarks/_exp_qkv_grad_weight.py): the case for a
#    fused q/k/v training linear.
# 3. The plain quantization passes' tilings at 32768 x 1536 and x 6144, as graph replays (_exp_quant_tiles.py).
# 4. The fused MLP on its new tiles, profiled with CUDA graphs (its kernels were 343.8 ms against 330.0 unfused in
#    session 15's call 2, both counting the optimizer's 8.2 ms range).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 240 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_train_loop.py tests/test_train_mlp.py \
  -k "cuda_graphs or gpu" > $OUT/tests.txt 2>&1; echo "tests rc=$? s=$SECONDS"; tail -4 $OUT/tests.txt
timeout 60 python3 benchmarks/_exp_qkv_grad_weight.py --out $OUT/qkv-grad-weight.json 2>&1 | grep -v Warn
timeout 90 python3 benchmarks/_exp_quant_tiles.py --out $OUT/quant-tiles.json 2>&1 | grep -v Warn | cut -c1-600
echo "s=$SECONDS"
timeout $((590 - SECONDS)) python3 benchmarks/profile_train.py --precisions int8 --batch-size 16 --fuse-mlp --out $OUT \
  > /dev/null 2>&1; echo "fused s=$SECONDS"; head -9 $OUT/profile-int8-fused-mlp.txt
