# session 5, call 3: where the training step's GPU time goes (torch.profiler), bf16 / int8 / fp8-rowwise / int8-weight
export PYTHONPATH=$PWD/src
for p in bf16 int8 fp8-rowwise int8-weight; do
  timeout $((330 - SECONDS)) python3 benchmarks/profile_train.py --precisions $p --out $OUT > $OUT/log-$p.txt 2>&1 || tail -5 $OUT/log-$p.txt
done
head -12 $OUT/profile-*.txt
