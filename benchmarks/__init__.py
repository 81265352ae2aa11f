"""Speed and memory of ``incremental``, side by side with the plain loop and dask-ml.

Run ``python -m benchmarks`` (full) or ``python -m benchmarks --quick`` (a few
minutes); ``--write`` saves the table, the machine and the versions to
``benchmarks/RESULTS.md``. The cases live in ``benchmarks.cases``, what they
share (timing, memory in a fresh process, datasets, the plain loop) in
``benchmarks._common``, the command line and the table in
``benchmarks.__main__``.
"""
