export PYTHONPATH=$PWD/src:$PWD/benchmarks
# Is the swapped kernel at 64-128 tokens held back by re-reading x from the L2? Each 64-row weight tile reads all of x,
# so at 64 tokens the seven linears read ~404 MB of x from the L2 against 101 MB of codes from memory (session 22's
# count, not measured). ncu's memory sections say what the L2 moved and at what share of its peak
for m in 64 128; do
  timeout 90 ncu --clock-control none --kernel-name regex:swapped --launch-skip 2 --launch-count 1 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy \
    python3 benchmarks/ncu_gemv.py --swapped --m $m > $OUT/ncu-swapped-m$m.txt 2>&1
  echo "ncu m=$m rc=$? s=$SECONDS"; grep -a "L2 Cache Throughput\|DRAM Throughput\|Memory Throughput\|Duration\|L1/TEX Hit\|L2 Hit" $OUT/ncu-swapped-m$m.txt | head -8
done
# W4A16 at 64-256 tokens: taller weight tiles and the standard orientation against the swapped kernel (the same question)
timeout 240 python3 benchmarks/_exp_tall_tiles.py $OUT/tall-tiles.json 2>&1 | grep -a "^{\|Error\|error"
echo "tall tiles s=$SECONDS"
# act-order's gather composed with the packed codes' order (X_ORDERED): if it wins, the layer keeps the composed index
timeout 120 python3 benchmarks/_exp_act_order_packed.py $OUT/act-order-packed.json 2>&1 | grep -a "^{\|Error\|error"
echo "act-order packed s=$SECONDS"
