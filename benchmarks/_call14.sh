# session 6, call 2 (carry [".whl"]): bench linear and bench generate (7B and 13B) with the peers side by side
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .whl/torchao-*.whl .whl/bitsandbytes-*.whl || exit  # the device README's way: no registry there
export PYTHONPATH=$PWD/src:/tmp/site
timeout 200 python3 -m lowbit.cli bench linear --out $OUT/linear > $OUT/linear.log 2>&1
echo "rc=$? s=$SECONDS"; tail -14 $OUT/linear.log
timeout $((585 - SECONDS)) python3 -m lowbit.cli bench generate --models 7b 13b --out $OUT/generate > $OUT/generate.log 2>&1
echo "rc=$? s=$SECONDS"; tr '\r' '\n' < $OUT/generate.log | grep -a "|" | tail -24
