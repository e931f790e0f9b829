"""Run the fuzz corpus (tests/fuzz_corpus.py) over every command and print the counts.

    python benchmarks/fuzz.py [-v | --all]

Prints one line per traceback, hang or partial output with -v (every case with
--all), then the totals:
cases, ok (valid runs), error (one-line errors, exit 2), traceback, hang, partial.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CONDENSATION_CPU_DEVICES", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import fuzz_corpus  # noqa: E402


def main() -> None:
    verbose = "all" if "--all" in sys.argv else "-v" in sys.argv
    cases = fuzz_corpus.corpus()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as root:
        outcomes = fuzz_corpus.run_all(cases, Path(root), verbose=verbose)
    counts = fuzz_corpus.summarise(outcomes)
    print(" ".join(f"{k}={v}" for k, v in counts.items()), f"({time.perf_counter() - t0:.0f} s)")
    sys.exit(0 if counts["traceback"] == counts["hang"] == counts["partial"] == 0 else 1)


if __name__ == "__main__":
    main()
