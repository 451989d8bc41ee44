# Prepared in session 13, NOT yet run (the device time was spent): what the next device call should do first.
# 1. The Gluon W4A16 GEMM as changed after call 9 (benchmarks/_exp_gluon_w4.py: scales and zero points loaded a step
#    ahead; 4 or 8 code bytes a thread), against call 8's 0.40 / 0.53 / 0.58 / 0.63x bf16 at 64 / 256 / 1024 / 4096 tokens.
# 1b. The register-operand W4A16 GEMM (benchmarks/_exp_gluon_w4_rega.py, compiled only): the weights dequantized
#     straight into the MMA's A-operand registers, no shared memory for them; 16-1024 tokens against bf16 and lowbit now.
# 2. ncu of its best tile, for the bank conflicts of the dequantized tile's stores (call 9: 9.4-way).
# 3. The Gluon matmul on E4M3 operands against torch._scaled_mm (benchmarks/_exp_fp8_pingpong.py, compiled only):
#    if it is as fast as cuBLAS's fast accumulation with the accuracy of its slow one, fp8-rowwise training and FP8
#    W8A8 can take it (a GPU test against float64 first).
# 4. bench train with all four precisions on the Gluon INT8 matmul (session 13 ran bf16, int8, fp8-rowwise).
# 5. bench matmul now times CUDA-graph replays (src/lowbit/bench/timing.py, written after the last call): its GPU
#    test and one run at 1024 and 4096 (each row's "timing" says how it was timed).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 100 python3 benchmarks/_exp_gluon_w4.py --out $OUT/gluon-w4.json --m 64 256 1024 4096 2>&1 | grep -v Warn | tail -5 | cut -c1-900
echo "s=$SECONDS"
timeout 90 python3 benchmarks/_exp_gluon_w4_rega.py --out $OUT/gluon-w4-rega.json 2>&1 | grep -v Warn | tail -5 | cut -c1-900
echo "rega rc=${PIPESTATUS[0]} s=$SECONDS"
timeout 90 ncu --clock-control none --kernel-name regex:w4_kernel --launch-skip 2 --launch-count 1 --section SpeedOfLight \
  --section WarpStateStats --section MemoryWorkloadAnalysis_Tables \
  python3 benchmarks/_exp_gluon_w4.py --ncu --m 1024 --tiles 128x64x128x4x4 > $OUT/ncu-w4.txt 2>&1; echo "ncu rc=$? s=$SECONDS"
grep -a "Duration\|SM Busy\|bank conflict\|stalled" $OUT/ncu-w4.txt | head -12 | cut -c1-150
timeout 120 python3 benchmarks/_exp_fp8_pingpong.py --out $OUT/fp8-pingpong.json 2>&1 | grep -v Warn | tail -10 | cut -c1-400
echo "s=$SECONDS"
timeout 260 python3 -m lowbit.cli bench train --preset llama2-1b --batch-size 16 --steps 6 \
  --precisions bf16 int8 fp8-rowwise fp8-tensorwise --out $OUT/train > /tmp/train.log 2>&1
echo "train rc=$? s=$SECONDS"; tr '\r' '\n' < /tmp/train.log | grep -a "|\|Error" | tail -7
rm -f $OUT/train/*.png
timeout 60 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_gpu.py -k timing 2>&1 | tail -2
timeout 150 python3 -m lowbit.cli bench matmul --sizes 1024 4096 --out $OUT/matmul > /tmp/mm.log 2>&1
echo "matmul rc=$? s=$SECONDS"; grep -a "A@Bt\|a@bT\|eager\|Error" /tmp/mm.log | head -14 | cut -c1-160
rm -f $OUT/matmul/*.png
