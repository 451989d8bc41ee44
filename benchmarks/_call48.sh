# Session 13, call 1 (prepared in session 12 as _next_call.sh): stream-K, the Gluon probe, ncu of the INT8 TMA matmul
# Session 12 ran its GPU calls 1-4 (docs/benchmarks/README.md "Session 12"); then the device was not lent again. Built after:
#   - stream-K for the INT8 TMA matmul (`ops.int8._scaled_mm_stream_k_kernel`, off: `ops.int8.STREAM_K = False`),
#     checked to the bit against the tile kernel in the interpreter only. Its GPU tests and its speed on the weight
#     gradients of a llama2-1b step (1536 x 1536 x 32768, bf16 out: 747 TFLOP/s in session 11's call 2 against ~1100 on the
#     forward shapes: 72 tiles of 128 x 256 for 132 SMs) are below. If it wins, set STREAM_K = True, re-run the GPU tests of
#     test_ops_int8.py and test_train_linear.py, and `lowbit bench train --precisions bf16 int8`.
# Then, to settle why the INT8 matmul stops near 1100 TOP/s (docs/benchmarks/README.md, session 12: 6.4 TB/s of
# operand traffic from the L2 counted): ncu's L2 throughput (lts__t_bytes.sum.per_second, and the % of peak in its
# "Memory Workload Analysis") on one 32768 x 1536 x 1536 call of ops.int8.scaled_int8_mm_tma, as ncu_gemv.py does for
# the GEMV. Near peak, the next kernel is a 2-CTA cluster with TMA multicast, which Triton 3.6 (Gluon included)
# cannot express.
export PYTHONPATH=$PWD/src
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
timeout 90 python3 -m pytest -q --tb=short -rf tests/test_ops_int8.py -k "tma or stream_k" -p no:logging 2>&1 | tail -3
timeout 150 python3 benchmarks/_exp_stream_k.py --out $OUT/stream-k.json 2>&1 | grep -v Warn | tail -6
# Explicit warp specialization in Gluon (benchmarks/_exp_gluon_ws_mm.py, compiled for sm_90 on the CPU only): does it
# run where tl.range(warp_specialize=True)'s matmuls hung? A hang shows as rc=124 with no row printed.
timeout 60 python3 benchmarks/_exp_gluon_ws_mm.py --out $OUT/gluon-ws.json 2>&1 | grep -v Warn | tail -5; echo "gluon rc=${PIPESTATUS[0]}"
echo "s=$SECONDS"
# ncu: L2 and DRAM throughput of the INT8 TMA matmul on a forward shape, and of cuBLAS INT8 on the same operands
NCU="ncu --clock-control none --launch-skip 2 --launch-count 1 --section SpeedOfLight --section MemoryWorkloadAnalysis --metrics lts__t_bytes.sum.per_second,lts__t_sectors_srcunit_tex.sum,sm__inst_executed_pipe_tensor.sum"
timeout 90 $NCU --kernel-name regex:scaled_mm python3 benchmarks/ncu_int8_mm.py > $OUT/ncu-tma.txt 2>&1; echo "ncu rc=$?"
timeout 60 $NCU --kernel-name regex:"gemm|cutlass|xmma" python3 benchmarks/ncu_int8_mm.py --cublas > $OUT/ncu-cublas.txt 2>&1; echo "ncu rc=$?"
grep -a "Kernel\|_kernel\|Duration\|Throughput\|lts__\|Hit Rate\|Busy" $OUT/ncu-tma.txt $OUT/ncu-cublas.txt | head -50
echo "s=$SECONDS"
