# Prepared in session 11, NOT yet run: what the next device call could do first.
# Session 11 ran everything it changed on the GPU (calls 1-5, docs/benchmarks/README.md "Session 11") except:
#   - E4M3 codes without the clamp before the GPU's cast (rows_cols.codes; sm_90 SASS of the codes pass 865 -> 737
#     instructions a 32 x 128 tile): bit-exactness on the GPU (test_ops_rows_cols, test_ops_tiles, test_ops_fp8) and
#     its speed (the codes pass ran E4M3 at 2663-2857 GB/s against int8's 3215-3518, call 4).
# Open questions, from call 5's profiles (int8 step 364.6 ms, bf16 404.9; 1.3x needs 311):
# 1. INT8 matmuls 165.9 ms against cuBLAS FP8 fast accumulation's 142.9 on the same shapes (call 2): a tile per shape
#    (256 x 128 for N = 1536 with K = 1536 or 6144; 128 x 128 on 4 warps for the K = 32768 grad-weight shapes: -2.5 ms
#    counted from call 2), then warp specialization (Gluon on sm_90) for the rest.
# 2. Quantization 45.6 ms (int8) / 57.6 (e4m3): the absmax pass (16.5 ms) fused into its producers.
# 3. "other" 76.3 ms against bf16's 72.8: the SiLU backward kernel takes 16.2 ms in int8's step, 11.2 in bf16's.
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/tests.txt
timeout 150 python3 -m pytest -q --tb=short -rf tests/test_ops_rows_cols.py tests/test_ops_tiles.py tests/test_ops_fp8.py \
  tests/test_train_linear.py -p no:logging >> $OUT/tests.txt 2>&1; tail -3 $OUT/tests.txt
timeout 200 python3 benchmarks/_exp_quant_passes.py --out $OUT/quant-passes.json 2>&1 | grep -v Warn | tail -4
timeout $((560 - SECONDS)) python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 16 --steps 6 \
  --precisions bf16 int8 fp8-rowwise --out $OUT/train > /tmp/train.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/train.log | grep -a "|\|Error" | tail -5
