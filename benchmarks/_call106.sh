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
