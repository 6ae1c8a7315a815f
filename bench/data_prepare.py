"""Time preparing the chapter-2/3 datasets: first load (IMDB: tokenising 50k raw reviews) and cached loads.

    python bench/data_prepare.py --data-dir data        # a data root holding imdb/, reuters/, ...

Prints one line per figure; exits non-zero only on error, never on a slow result.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path


def timed(make) -> tuple[float, object]:
    t0 = time.perf_counter()
    dm = make()
    dm.setup()
    return time.perf_counter() - t0, dm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--reps", type=int, default=3, help="cached loads to time")
    args = parser.parse_args()
    from dlwp.data.boston import BostonHousingDataModule
    from dlwp.data.imdb import IMDBDataModule
    from dlwp.data.mnist import MNISTDataModule
    from dlwp.data.reuters import ReutersDataModule

    d = args.data_dir
    cache = Path(tempfile.mkdtemp(prefix="dlwp-bench-cache-"))
    try:
        makers = {
            "imdb": lambda: IMDBDataModule(word_index=str(d / "imdb/imdb_word_index.json"),
                                           reviews=str(d / "imdb/aclImdb_v1.tar.gz"), cache_dir=str(cache)),
            "reuters": lambda: ReutersDataModule(path=str(d / "reuters/reuters.npz")),
            "boston_housing": lambda: BostonHousingDataModule(path=str(d / "boston_housing/boston_housing.npz")),
            "mnist": lambda: MNISTDataModule(path=str(d / "mnist/mnist.npz")),
        }  # fmt: skip
        for name, make in makers.items():
            first, dm = timed(make)
            cached = sorted(timed(make)[0] for _ in range(args.reps))
            sizes = " ".join(f"{k}={v}" for k, v in dm.sizes().items())
            print(f"{name:<15} first_load_s {first:7.2f}  cached_load_s median {cached[len(cached) // 2]:.2f} "
                  f"(min {cached[0]:.2f})  {sizes}", flush=True)  # fmt: skip
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
