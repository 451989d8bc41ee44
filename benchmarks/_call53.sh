# Session 13, call 6: the Gluon INT8 matmul's host cost a launch against its GPU time (CUDA graphs), and bench linear
# (W8A8 int8 takes it above 512 tokens) at 1024 and 4096 tokens.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
timeout 120 python3 benchmarks/_exp_launch_cost.py --out $OUT/launch-cost.json 2>&1 | grep -v Warn | tail -8
echo "s=$SECONDS"
timeout 200 python3 -m lowbit.cli bench linear --m 1024 4096 --out $OUT/linear > /tmp/linear.log 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^|" /tmp/linear.log | cut -c1-220 | head -14
rm -f $OUT/linear/*.png
