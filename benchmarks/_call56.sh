# Session 13, call 9: the GPU tests of the INT8 matmuls as committed (the Gluon kernel with cached layouts), and ncu of
# the Gluon W4A16 GEMM (128 x 64 x 128, 4 stages; 1024 tokens on 4096 -> 11008) to see what holds it at ~0.5x bf16.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 150 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_int8_hopper.py tests/test_ops_int8.py \
  tests/test_train_linear.py > $OUT/tests.txt 2>&1; echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -12
timeout 120 ncu --clock-control none --kernel-name regex:w4_kernel --launch-skip 2 --launch-count 1 --section SpeedOfLight \
  --section WarpStateStats --section MemoryWorkloadAnalysis_Tables --section ComputeWorkloadAnalysis \
  python3 benchmarks/_exp_gluon_w4.py --ncu --m 1024 --tiles 128x64x128x4 > $OUT/ncu-w4.txt 2>&1; echo "ncu rc=$? s=$SECONDS"
grep -a "Duration\|Throughput\|Stall\|Shared\|Bank\|Issue\|Pipe\|Busy" $OUT/ncu-w4.txt | head -40 | cut -c1-150
