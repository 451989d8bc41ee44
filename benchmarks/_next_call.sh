# Prepared in session 22 (not run: its device time ran out; rename to _callNN.sh when run): bench linear with the
# act-order gather's final tile (one row a program, index_select past 32 MB of x). Session 22's call 5 checked the
# tile's output on the GPU bit for bit at twelve shapes; its bench linear (call 4) ran with the 4-row tile.
# Two calls' worth: split it at the line "# ---- second call" (~500 s and ~540 s of timeouts).
export PYTHONPATH=$PWD/src:$PWD/benchmarks
# the word GEMV's scale and zero-point rows as offsets from the tile's first (ROW_OFFSETS, off): if it wins, make it the
# default and drop the option
timeout 60 python3 benchmarks/_exp_words_row_offsets.py $OUT/words-row-offsets.json 2>&1 | grep -a "^{\|Error\|error"
echo "row offsets s=$SECONDS"
timeout 150 python3 -m lowbit.cli bench linear --m 1 16 32 64 128 256 4096 --out $OUT/linear > /dev/null 2>&1
echo "linear rc=$? s=$SECONDS"; grep -a "^| " $OUT/linear/report.md | head -16 | cut -c1-300
timeout 90 python3 -m pytest -q --tb=short -rf -p no:logging tests/test_ops_weight_only.py -k "gather or permutation or x_given or word_gemv" > $OUT/tests.txt 2>&1
echo "tests rc=$? s=$SECONDS"; grep -a "passed\|failed\|FAILED\|Error" $OUT/tests.txt | head -10
# NF4's prefill of 128 tokens takes the folded 128-token tile now (session 22): bench generate's prefill column
timeout 200 python3 -m lowbit.cli bench generate --models 7b --schemes bf16 nf4 --out $OUT/generate > /dev/null 2>&1
echo "generate rc=$? s=$SECONDS"; grep -a "^| 7b" $OUT/generate/report.md | cut -c1-200
# ---- second call
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
