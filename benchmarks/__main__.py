"""``python -m benchmarks``: run the cases, print a markdown table, maybe save it.

Usage::

    python -m benchmarks --quick            # a few minutes, small data
    python -m benchmarks --quick --write    # and save benchmarks/RESULTS.md
    python -m benchmarks                    # full sizes (tens of GB on disk)
    python -m benchmarks --only overhead,memory --data /big/disk/bench
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from ._common import Row, Settings, is_number, prepare_job, warm_memory
from ._search import SEARCH_CASES
from .cases import CASES as _CASES
from .throughput import THROUGHPUT_CASES

CASES = {**_CASES, **THROUGHPUT_CASES, **SEARCH_CASES}
# Parts of other cases, run only when named (a full run has them already).
NAMED_ONLY = {"pipeline-zstd", "prefetch", "huge-pages"}
DEFAULT_CASES = [name for name in CASES if name not in NAMED_ONLY]

RESULTS = Path(__file__).with_name("RESULTS.md")
COLUMNS = (
    "case",
    "size",
    "measure",
    "ours",
    "plain loop",
    "dask-ml",
    "ours/plain",
    "ours/dask-ml",
    "limit",
    "ours/limit",
    "check",
)


def _value(value: float | None, unit: str) -> str:
    if not is_number(value):
        return "n/a" if value is None else str(value)
    if unit == "s":
        return f"{value:.3g} s" if value < 100 else f"{value:.0f} s"
    if unit == "MB":
        return f"{value:,.0f} MB"
    if unit == "passes":
        return f"{value:.2f}"
    if unit == "x":
        return f"{value:.3f}x"
    return f"{value:.4f}"


def _ratio(a: float | None, b: float | None, unit: str) -> str:
    # Ratios of scores say nothing; ratios of times and memory do.
    if unit not in ("s", "MB") or not (is_number(a) and is_number(b)) or b == 0:
        return ""
    return f"{a / b:.2f}x"


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as a markdown table, with the ratios worked out."""
    lines = [
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join("---" for _ in COLUMNS) + "|",
    ]
    for row in rows:
        cells = [
            row.case,
            row.size,
            row.measure,
            _value(row.ours, row.unit),
            _value(row.plain, row.unit),
            _value(row.dask_ml, row.unit),
            _ratio(row.ours, row.plain, row.unit),
            _ratio(row.ours, row.dask_ml, row.unit),
            "" if row.limit is None else _value(row.limit, row.unit),
            _ratio(row.ours, row.limit, row.unit),
            row.check,
        ]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> str:
    """Cores, memory, processor, OS and package versions, as markdown lines."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        import psutil

        memory = f"{psutil.virtual_memory().total / 2**30:.1f} GiB memory"
    except ImportError:
        memory = "memory unknown"
    versions = ", ".join(
        f"{name} {_version(name)}"
        for name in (
            "incremental",
            "dask",
            "distributed",
            "scikit-learn",
            "numpy",
            "zarr",
            "dask-ml",
        )
    )
    return (
        f"- machine: {os.cpu_count()} cores ({cpu}), {memory}, "
        f"{platform.system()} {platform.release()}\n"
        f"- versions: python {platform.python_version()}, {versions}"
    )


def results_markdown(
    table: str, command: str, seconds: float, quick: bool, load: float | None
) -> str:
    """The whole of RESULTS.md: how it was made, on what, the table, notes."""
    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    mode = "quick (small sizes)" if quick else "full"
    busy = "" if load is None else f"; load average when it started: {load:.2f}"
    return f"""# Benchmark results

Made by `{command}` on {today}, {mode}, in {seconds / 60:.1f} minutes{busy}.

{machine()}

{table}

- **ours**: `incremental.Incremental` (with `shuffle_blocks=False`, so the
  block order is the plain loop's); **plain loop**: scikit-learn's
  `partial_fit` called by hand on each NumPy block, the lower bound for the
  work (for data on disk it reads a block with zarr, then fits it, one after
  the other); **dask-ml**: `dask_ml.wrappers.Incremental` (also unshuffled).
- dask-ml's `Incremental(StandardScaler())` raises `TypeError` in `fit`
  with scikit-learn 1.9 (it asks for a `score` method); the pipeline rows
  give it `scoring="r2"`, which only passes that check.
- All columns of a row ran in the same process run; a "median of n" row
  took turns (ours, plain, dask-ml, ours, ...) n times.
- "ours == plain bit for bit": `coef_` and `intercept_` (and the scaler's
  `mean_` and `var_`) are equal to the plain loop's, bit for bit.
- Data on disk is the demo's (`incremental.demo.write_dataset`), zarr,
  uncompressed X, written before the run. Before the pipeline and peak RSS
  rows every file of the dataset is read once, so all libraries find the
  same files in the operating system's page cache (up to about 18 GB here;
  the 100M-row dataset does not fit whole, so part of it comes from disk).
- The pipeline's "partial_fit calls alone" row is the time spent inside
  `partial_fit` in the plain loop (the scaler's pass, then the SGD's). Each
  call needs the model the one before left, so no exact blockwise fit can
  be faster, however the blocks are read.
- The reference pipeline and peak RSS rows run each fit in a fresh
  process, which imports dask.distributed before the clock starts (dask
  does so on its first compute; importing dask-ml does it at once). The
  other rows run in the benchmark's process, after earlier cases.
- Before the first case the run touches three quarters of the available
  memory once, in a throwaway process: on this virtual machine the host
  backs guest memory only when it is first touched (keeping 3.2 GB of new
  arrays took 6.0 s the first time, 0.9 s once touched), which would
  charge whichever library ran first, or kept more in memory.
- Peak RSS figures come from a fresh process per fit (its `VmHWM`; its
  `ru_maxrss` would include the peak of the benchmark process that started
  it) and include the imports (numpy, dask, scikit-learn, zarr).
- In the search rows the "plain loop" column is the exhaustive search:
  `GridSearchCV(Incremental(SGDClassifier))` over the same 49 candidates as
  ours, each trained to the full budget (40 calls, one pass over the 40
  training blocks), validated on the same 4 held-out blocks (one
  `PredefinedSplit`); the dask-ml column is dask-ml's `HyperbandSearchCV`
  on a LocalCluster. The 20M-row size reads X from zarr stored with zstd.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time incremental against the plain partial_fit loop and dask-ml.",
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes, a few minutes"
    )
    parser.add_argument(
        "--write", action="store_true", help=f"save the results to {RESULTS}"
    )
    parser.add_argument(
        "--only",
        default=",".join(DEFAULT_CASES),
        help="comma-separated cases to run "
        f"(default all: {','.join(DEFAULT_CASES)}; also {','.join(sorted(NAMED_ONLY))})",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder for the datasets, kept for the next run "
        "(default: a temporary folder, deleted at the end)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen cases and print the table; return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(CASES))
    if unknown:
        parser.error(f"unknown case {unknown[0]!r}; choose from {', '.join(CASES)}")
    prepare_job()
    print("touching memory once ...", file=sys.stderr, flush=True)
    warmed = warm_memory()
    print(f"memory touched in {warmed:.1f} s", file=sys.stderr, flush=True)

    data_dir = args.data or Path(tempfile.mkdtemp(prefix="incremental-bench-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = Settings(quick=args.quick, data_dir=data_dir)
    # Other programs running on the machine slow the timings; say how busy.
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    started = time.perf_counter()
    rows: list[Row] = []
    try:
        for name in chosen:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            case_started = time.perf_counter()
            new = CASES[name](settings)
            rows += new
            took = time.perf_counter() - case_started
            print(markdown_table(new), file=sys.stderr)
            print(f"{name}: {took:.0f} s", file=sys.stderr, flush=True)
    finally:
        if args.data is None:
            shutil.rmtree(data_dir, ignore_errors=True)
    seconds = time.perf_counter() - started

    table = markdown_table(rows)
    print(table)
    if args.write:
        command = "python -m benchmarks " + " ".join(
            sys.argv[1:] if argv is None else argv
        )
        RESULTS.write_text(
            results_markdown(table, command.strip(), seconds, args.quick, load)
        )
        print(f"\nwritten to {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
