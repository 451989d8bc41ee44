# Prepared in session 23 (not run; rename to _callNN.sh when run). One call, ~400 s of timeouts.
export PYTHONPATH=$PWD/src:$PWD/benchmarks
# act-order's gather with whole rows a program (`_GATHER_WHOLE_ROWS_M`, off): if it wins from some row count, set it
# there, and raise `_GATHER_MAX_BYTES` if it beats index_select on the 90 MB x; then bench linear's act-order row
timeout 150 python3 benchmarks/_exp_gather_rows.py $OUT/gather-rows.json 2>&1 | grep -a "^{\|Error\|error"
echo "gather rows s=$SECONDS"
# the dispatch limits after sessions 21-23's kernel changes (the word GEMV's row offsets took int4 at two tokens from
# 92.2 to 85.8 µs; the H200's entry gives int4's word GEMV one token only): written to $OUT, not to the package's file
mkdir -p $OUT/dispatch
timeout 200 python3 -m lowbit.cli bench dispatch --write-to $OUT/dispatch/limits.json --out $OUT/dispatch > $OUT/dispatch.log 2>&1
echo "dispatch rc=$? s=$SECONDS"; grep -a "^| " $OUT/dispatch/report.md | head -30 | cut -c1-240
cat $OUT/dispatch/limits.json
# the swapped kernel with its registers capped for more programs an SM (its warps wait on everything a little at 64
# tokens, 2.5 warps a scheduler): if a cap wins, swapped_config takes it (the launcher passes maxnreg through)
timeout 150 python3 benchmarks/_exp_swapped_maxnreg.py $OUT/swapped-maxnreg.json 2>&1 | grep -a "^{\|Error\|error"
echo "maxnreg s=$SECONDS"
