"""Training benchmark: time and peak memory of the fraud pipeline on N simulated transactions.

    python bench/train.py                # ~1,000,000 transactions (70 days, ~12k cards)
    python bench/train.py --rows 200000

Runs the real pipeline (simulate, offline features by replay, XGBoost with early stopping, LR baseline,
evaluation, ONNX export with parity check, report) into a temporary model folder and prints per-step times and
the process's peak resident memory (``getrusage`` max RSS, which includes the Python interpreter and libraries).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.console import Steps
from training.pipeline import train
from training.prepare import TrainOptions
from training.simulate.transactions import TransactionSimConfig

# Genuine transactions per card over the default 70 days (rate x days); frauds add well under 1%.
_ROWS_PER_CARD = TransactionSimConfig().tx_per_card_day * TransactionSimConfig().days


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


class _PrintSteps(Steps):
    def _finished(self, name: str, seconds: float) -> None:
        print(f"  {name:<40} {seconds:8.1f} s   peak RSS {peak_rss_mb():8.0f} MiB", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="approximate transactions to simulate")
    parser.add_argument("--framework", default="xgboost")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    cards = max(100, round(args.rows / _ROWS_PER_CARD))
    print(f"fraud training benchmark: ~{args.rows:,} transactions ({cards:,} cards x 70 days), "
          f"{args.framework}, 2 threads", flush=True)
    steps = _PrintSteps()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train(TrainOptions(kind="fraud", framework=args.framework, seed=args.seed, model_dir=Path(tmp),
                                    data_dir=None, sim_entities=cards), steps)
    total = time.perf_counter() - started
    rows = int(result.metadata["history"]["transactions"])
    features = steps.timings.get("fraud features (replay)", float("nan"))
    print(f"transactions:            {rows:,}")
    print(f"offline features:        {features:.1f} s ({features / rows * 1e6:.1f} us per transaction)")
    print(f"total training time:     {total:.1f} s")
    print(f"peak memory (max RSS):   {peak_rss_mb():.0f} MiB")
    print(f"test AP {result.metadata['metrics']['average_precision']:.4f} "
          f"(LR baseline {result.metadata['metrics']['baseline_logreg_average_precision']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
