# Session 11, call 2: the GPU tests call 1 ran out of time for (session 10's untested changes), then the INT8
# matmuls of a training step shape by shape: tiles, a persistent TMA kernel, split-K (benchmarks/_exp_train_mm.py)
export PYTHONPATH=$PWD/src
timeout 150 python3 -m pytest -q --tb=short -rf tests/test_ops_weight_only.py tests/test_api.py -k "tall_tiles or backward or adapters or dequantiz" > $OUT/tests.txt 2>&1; tail -4 $OUT/tests.txt
timeout 400 python3 benchmarks/_exp_train_mm.py --out $OUT/train-mm.json 2>&1 | grep -v Warning | tail -12
