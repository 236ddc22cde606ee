"""Tests compare results across processes (serial runs, sweep workers, Ray workers, DDP ranks), and torch's
float results depend on the intra-op thread count: every process the tests start runs on one thread, as
under .ci/run, unless the caller chose otherwise."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
