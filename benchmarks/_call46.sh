# Session 12, call 3: call 45's INT8 sweep printed nothing in 300 s (most likely a warp-specialized kernel that never
# finished): the K-loop-specialized kernel first, on every shape; then the persistent one a tile a process.
export PYTHONPATH=$PWD/src
timeout 200 python3 benchmarks/_exp_ws_mm.py --kinds inner --out $OUT/ws-mm-inner.json 2>&1 | grep -v Warn | grep -v '^{' > $OUT/inner.log
tail -5 $OUT/inner.log; echo "inner rc=${PIPESTATUS[0]} s=$SECONDS"
for i in 0 1 2 3 4 5 6; do
  timeout 30 python3 benchmarks/_exp_ws_mm.py --kinds persistent --tiles $i --shapes 0 3 --out /tmp/p$i.json 2>&1 | grep -v Warn | grep -v "^{" >> $OUT/persistent.log
  echo "persistent tile $i s=$SECONDS" >> $OUT/persistent.log
done
cat $OUT/persistent.log
