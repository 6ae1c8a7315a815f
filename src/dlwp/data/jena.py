"""Jena climate (book 6.3, 6.4): 24-hours-ahead temperature from 10 days of 10-minute records.

The book's generator yields `samples = data[rows - lookback : rows : step]` and
`targets = data[rows + delay][1]` (temperature). Here the normalised array is kept once in memory
and a split is just its window end rows `i` with their targets; each batch of rows becomes its
windows by index arithmetic (`batch_transform`), so nothing is copied per window (the full file
would need ~3 GB of materialised windows). Training rows are shuffled every epoch; validation
and test rows are served in order, as the book's generators with `shuffle=False`.

Two sources: the canonical `jena_climate_2009_2016.csv` (420,551 rows; the book's split rows
0-200,000 / 200,001-300,000 / 300,001-end), or `variant=partial`, the mirror's real partial copy
(the first 20,002 canonical rows; see `PARTIAL`): its rows 4,001-20,002, with the columns that
are present there, cut by time. Empty columns are never imputed: a column with a missing value
in the used rows is an error that names it.
"""

from __future__ import annotations

import csv
import gzip
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlwp.data.base import InMemoryDataModule, Split, require_file
from dlwp.errors import ConfigError, DataMissingError

CANONICAL = "jena_climate_2009_2016.csv"
TARGET = "T (degC)"
PARTIAL = {
    # the canonical columns present in rows 4,001-20,002 of the partial copy (README of the mirror)
    "columns": ["p (mbar)", "T (degC)", "rh (%)", "VPmax (mbar)", "H2OC (mmol/mol)", "max. wv (m/s)", "wd (deg)"],
    "first_row": 4000,  # 0-based: rows 1-4,000 lack max. wv and wd
    # 16,002 rows by time: train the first half, validate the next quarter, test the last
    "splits": (0.5, 0.75),
}


def read_csv(path: Path) -> tuple[list[str], np.ndarray]:
    """(header without "Date Time", float64 values with NaN for empty cells) of a Jena csv, plain,
    gzipped or inside the published zip."""
    require_file(path, "jena_climate")
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                text = archive.read(CANONICAL).decode("utf-8")
        elif path.suffix == ".gz":
            text = gzip.decompress(path.read_bytes()).decode("utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text)))
        header, body = rows[0], rows[1:]
        values = np.array([[float(v) if v else np.nan for v in row[1:]] for row in body], dtype=np.float64)
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, ValueError, IndexError) as err:
        raise DataMissingError(f"jena_climate: {path} is not a readable Jena climate csv ({err}); replace it") from err
    return header[1:], values


Rows = list[int] | list[list[int]]
"""A split's rows: one [start, stop) range, or a list of ranges (blocks)."""


def _as_ranges(rows: Rows, name: str) -> list[tuple[int, int]]:
    items = list(rows)
    ranges = items if items and hasattr(items[0], "__len__") else [items]  # one [start, stop], or blocks
    if not ranges or any(len(r) != 2 for r in ranges):
        raise ConfigError(f"data.{name}_rows={rows!r}: give [start, stop] or a list of [start, stop] blocks")
    return [(int(a), int(b)) for a, b in ranges]


def _ranges_text(ranges: list[tuple[int, int]]) -> str:
    return ", ".join(f"[{a}, {b})" for a, b in ranges)


class JenaDataModule(InMemoryDataModule):
    """Windows of the Jena weather series; see the module doc.

    Args:
        path: the csv (`.csv`, `.csv.zip` as published, or the mirror's partial `.csv.gz`).
        variant: `full` (the canonical file, the book's split rows) or `partial` (the mirror's copy).
        columns: the columns used as inputs; null = every column (full) or `PARTIAL["columns"]`.
        lookback: how far back a window starts, in rows (book: 1440 = 10 days).
        step: one row in `step` is kept (book: 6 = hourly).
        delay: the target is this many rows after the window's end (book: 144 = 24 hours).
        train_rows, val_rows, test_rows: [start, stop): the rows each split's windows and targets
            use, or a list of such ranges (blocks: no window crosses a block's edge); null: the
            variant's default (full: the book's generators, see `_bounds`; partial: the first half,
            the next quarter, the last quarter by time).
        val_batches: validation windows served, in batches (book: `val_steps = 769`); null: all.
        **kwargs: see `InMemoryDataModule`.
    """

    dataset = "jena_climate"

    def __init__(self, path: str, variant: str = "full", columns: list[str] | None = None, lookback: int = 1440,
                 step: int = 6, delay: int = 144, train_rows: Rows | None = None,
                 val_rows: Rows | None = None, test_rows: Rows | None = None,
                 val_batches: int | None = None, **kwargs) -> None:  # fmt: skip
        super().__init__(**kwargs)
        if variant not in ("full", "partial"):
            raise ConfigError(f"data.variant={variant!r}: full (the canonical csv) or partial (the mirror's copy)")
        if lookback < 1 or step < 1 or delay < 0 or lookback % step:
            raise ConfigError(f"data.lookback={lookback}, data.step={step}, data.delay={delay}: need lookback >= 1, "
                              "a step that divides it, and delay >= 0")  # fmt: skip
        self.path, self.variant, self.columns = Path(path), variant, columns
        self.lookback, self.step, self.delay = lookback, step, delay
        self.rows = {"train": train_rows, "val": val_rows, "test": test_rows}
        self.val_batches = val_batches
        self.batch_transform = self._windows
        self._arrays: dict[str, torch.Tensor] = {}

    def files(self) -> list[Path]:
        return [self.path]

    def load(self) -> dict[str, Split]:
        header, values = read_csv(self.path)
        columns = self.columns or (PARTIAL["columns"] if self.variant == "partial" else header)
        missing = [c for c in columns if c not in header]
        if missing:
            raise ConfigError(f"data.columns: {missing} not in {self.path.name} (it has {header})")
        if TARGET not in columns:
            raise ConfigError(f"data.columns must include the target {TARGET!r}")
        first = PARTIAL["first_row"] if self.variant == "partial" else 0
        data = values[first:, [header.index(c) for c in columns]]
        bounds = self._bounds(len(data))
        for c, name in enumerate(columns):
            bad = np.flatnonzero(np.isnan(data[: max(stop for ranges in bounds.values() for _, stop in ranges), c]))
            if len(bad):
                raise DataMissingError(
                    f"jena_climate: column {name!r} is empty in {len(bad)} used rows (first: data row "
                    f"{bad[0] + first + 1} of {self.path.name}); drop it from data.columns, nothing is imputed"
                )
        # statistics of the rows training windows read (the book: data[:200000]), nothing later
        train = np.concatenate([data[start : stop - self.delay] for start, stop in bounds["train"]])
        self.mean, self.std = train.mean(0), train.std(0)
        self.columns_used, self.target_index = list(columns), columns.index(TARGET)
        normalised = torch.from_numpy(((data - self.mean) / self.std).astype(np.float32))
        self._arrays = {"cpu": normalised}
        splits = {}
        for name, ranges in bounds.items():
            ends = torch.cat([self.window_ends(start, stop) for start, stop in ranges])
            if name == "val" and self.val_batches is not None:
                ends = ends[: self.val_batches * self.eval_batch_size]
            short = [(a, b) for a, b in ranges if len(self.window_ends(a, b)) == 0]
            if short:
                raise ConfigError(f"the {name} split, rows {_ranges_text(short)}, is too short for data.lookback="
                                  f"{self.lookback} + data.delay={self.delay}")  # fmt: skip
            splits[name] = (ends, normalised[ends + self.delay, self.target_index].clone())
        return splits

    def window_ends(self, start: int, stop: int) -> torch.Tensor:
        """The window end rows `i` of a split whose windows and targets use rows [start, stop):
        `start + lookback <= i` and `i + delay < stop`. (The book's generator draws `i` in
        [min_index + lookback, max_index): `stop = max_index + delay`.)"""
        return torch.arange(start + self.lookback, max(start + self.lookback, stop - self.delay), dtype=torch.int64)

    def _bounds(self, n: int) -> dict[str, list[tuple[int, int]]]:
        if self.variant == "full":
            # the book's generators: min_index 0 / 200001 / 300001, max_index 200000 / 300000 /
            # len - delay - 1; their targets reach `delay` rows past max_index, as the book's did
            d = self.delay
            default = {"train": (0, 200000 + d), "val": (200001, 300000 + d), "test": (300001, n - 1)}
        else:
            a, b = (int(n * f) for f in PARTIAL["splits"])
            default = {"train": (0, a), "val": (a, b), "test": (b, n)}
        bounds = {k: _as_ranges(v, k) if v is not None else [default[k]] for k, v in self.rows.items()}
        for name, ranges in bounds.items():
            for start, stop in ranges:
                if not 0 <= start < stop <= n:
                    raise ConfigError(f"data.{name}_rows: [{start}, {stop}) must lie within the {n} rows")
        return bounds

    def _windows(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows -> `[B, lookback // step, features]` windows, gathered from the one normalised array."""
        ends, targets = batch
        data = self._array_on(ends.device)
        offsets = torch.arange(-self.lookback, 0, self.step, device=ends.device)
        return data[ends[:, None] + offsets], targets

    def _array_on(self, device: torch.device) -> torch.Tensor:
        key = str(device)
        if key not in self._arrays:
            self._arrays[key] = self._arrays["cpu"].to(device)
        return self._arrays[key]

    def init_network(self, network: torch.nn.Module) -> dict[str, Any] | None:
        """A naive forecast (`last_step`) must read the temperature column of these columns."""
        from dlwp.model.sequence import LastStep

        for layer in network.modules():
            if isinstance(layer, LastStep) and layer.feature != self.target_index:
                index = self.target_index
                raise ConfigError(f"the last_step layer reads feature {layer.feature}, but {TARGET!r} is feature "
                                  f"{index} of data.columns: set its feature to {index}")  # fmt: skip
        return None

    def baselines(self) -> dict[str, float]:
        """The book's common-sense baseline: tomorrow's temperature = the window's last one
        (`preds = samples[:, -1, 1]`), MAE over the validation windows, in normalised units and °C,
        and over the training windows (what a model's training MAE must beat to have learned
        anything); and the temperature's standard deviation, which turns any MAE here into °C."""
        std = float(self.std[self.target_index])
        # degC_per_unit: a model's MAE in normalised units times this is its MAE in °C
        out = {"naive_train_mae": self._naive_mae("train"), "degC_per_unit": std}
        if "val" in self.splits:
            out |= {"naive_val_mae": self._naive_mae("val"), "naive_val_mae_degC": self._naive_mae("val") * std}
        return out

    def _naive_mae(self, split: str) -> float:
        ends, targets = self.splits[split]
        last = self._arrays["cpu"][ends - self.step, self.target_index]
        return float((last - targets).abs().mean())
