# Session 13, call 7: a warp-specialized W4A16 GEMM in Gluon (benchmarks/_exp_gluon_w4.py: load warp, dequantizing
# warpgroup, MMA warpgroup) against bf16 and lowbit's dispatch at 64-4096 tokens on the 7B layer's linears (CUDA
# graphs); then the Gluon INT8 matmul's eager host cost with its layouts cached.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 45 python3 benchmarks/_exp_gluon_w4.py --m 256 --tiles 128x64x64x6 > /tmp/probe.txt 2>&1
rc=$?; grep -v Warn /tmp/probe.txt | tail -3 | cut -c1-600; echo "probe rc=$rc s=$SECONDS"
[ $rc = 0 ] && timeout 200 python3 benchmarks/_exp_gluon_w4.py --out $OUT/gluon-w4.json 2>&1 | grep -v Warn | tail -8 | cut -c1-700
echo "s=$SECONDS"
timeout 60 python3 benchmarks/_exp_launch_cost.py --out $OUT/launch-cost.json 2>&1 | grep -v Warn | tail -8
echo "s=$SECONDS"
