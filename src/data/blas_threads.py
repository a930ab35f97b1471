"""One OpenBLAS thread per process for the training data stream, set before NumPy loads OpenBLAS.

The stream's matrix products are small (the bicubic resize of a 96x96 to 192x192 crop); OpenBLAS's own threads on
them spin more than they compute: sr_x4 samples took 2.7 times the CPU time with NumPy's default threads on this
project's 2-core host (benchmarks/data_benchmark.py, bare samples per CPU-second), and every data worker process
would start its own pool. Imported first by the entry points that run the stream (train.py,
benchmarks/data_benchmark.py), before anything imports NumPy; an OPENBLAS_NUM_THREADS the user set is kept.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
