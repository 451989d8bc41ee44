# Session 10, call 2: the zero point a step ahead in the swapped kernel (benchmarks/_exp_zahead.py), and ncu's
# per-instruction stall samples of the swapped kernel at 16 tokens (4096→11008, int4 g128 with zero points)
export PYTHONPATH=$PWD/src
cd benchmarks && timeout 200 python3 _exp_zahead.py $OUT/zahead.json 2>&1 | tail -3
cd .. && timeout 150 ncu --clock-control none --kernel-name regex:swapped --launch-skip 2 --launch-count 1 --section SourceCounters \
    --section WarpStateStats --page source --print-source sass --csv python3 benchmarks/ncu_gemv.py --swapped --m 16 > $OUT/ncu-sass.csv 2> $OUT/ncu.err
head -c 600 $OUT/ncu.err; wc -l $OUT/ncu-sass.csv; head -3 $OUT/ncu-sass.csv | cut -c1-600
