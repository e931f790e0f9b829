"""Run the fuzz corpus (tests/fuzz_corpus.py) over every command and print the counts.

    python benchmarks/fuzz.py [-v | --all] [--signals N] [--only TEXT]

Prints one line per bad case with -v (every case with --all), then the totals
by outcome: valid runs, one-line errors (exit 2), tracebacks, hangs, partial
outputs, foreign files changed or read into an output, silently wrong results
(a case's own expectation); then the early-signal section: N SIGINTs and N
SIGTERMs (default 5 each) at random times in the first 1.5 s of ``train`` in a
process of its own, each to exit 130/143 with one line and write nothing.
``--only TEXT`` runs the cases whose name contains TEXT (and no signals).

Exits 1 when any traceback, hang, partial output, foreign file or unexpected
outcome was counted, else 0.
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


def _option(name: str, default: str | None) -> str | None:
    if name in sys.argv:
        return sys.argv[sys.argv.index(name) + 1]
    return default


def _line(counts: dict[str, int], seconds: float) -> str:
    names = {
        "ok": "valid",
        "error": "one-line-exit-2",
        "foreign": "foreign-changed",
    }
    return " ".join(f"{names.get(k, k)}={v}" for k, v in counts.items()) + f" ({seconds:.0f} s)"


def main() -> None:
    verbose = "all" if "--all" in sys.argv else "-v" in sys.argv
    only = _option("--only", None)
    n_signals = int(_option("--signals", "0" if only else "5"))
    cases = fuzz_corpus.corpus()
    if only:
        cases = [c for c in cases if only in c.name]
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        outcomes = fuzz_corpus.run_all(cases, Path(root), verbose=verbose)
        counts = fuzz_corpus.summarise(outcomes)
        print("corpus:", _line(counts, time.perf_counter() - t0), flush=True)
        t0 = time.perf_counter()
        signals = fuzz_corpus.signal_runs(n_signals, Path(root), verbose=verbose)
        sig_counts = fuzz_corpus.summarise(signals)
        print("early signals:", _line(sig_counts, time.perf_counter() - t0))
    totals = fuzz_corpus.summarise(outcomes + signals)
    print("total:", _line(totals, 0).rsplit(" (", 1)[0])
    sys.exit(1 if fuzz_corpus.failed(totals) else 0)


if __name__ == "__main__":
    main()
