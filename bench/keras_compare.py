"""dlwp vs the book's own framework: the same tasks in Keras 3 + TensorFlow, same data and threads.

    bash bench/keras_setup.sh                       # once: Keras + TensorFlow in bench/.venv-keras
    python bench/keras_compare.py --data-dir data --epochs 4 [--write docs/PERFORMANCE.md]

Optional: skipped with a message (exit 0) when bench/.venv-keras is absent. The arrays both sides
train on are exported from dlwp's data modules, so only the framework differs. Median epoch time
(first epoch not counted) and the test metric of each; one line per figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from markdown_block import block_rows, write_block  # bench/markdown_block.py

HERE = Path(__file__).resolve().parent
KERAS_PY = HERE / ".venv-keras" / "bin" / "python"
JENA_BOOK = ["data=jena_partial", "data.steps_per_epoch=500"]
"""The partial Jena copy, 500 steps of 128 an epoch, as the book's fit_generator."""
DLWP = {"mnist_dense": ["task=mnist_dense"], "mnist_convnet": ["task=mnist_convnet"], "imdb_dense": ["task=imdb_dense"],
        "boston_fold": ["task=boston_kfold", "kfold.k=0", "data.num_folds=4", "data.fold=0",
                        "data.batch_size=1"],
        "cats_dogs_scratch": ["task=cats_dogs_scratch"],
        # the same with bfloat16 autocast on the CPU (oneDNN's bf16 convolutions; Keras stays float32)
        "cats_dogs_scratch_bf16": ["task=cats_dogs_scratch", "trainer.precision=bf16-mixed"],
        # the same dlwp run against the book's code verbatim: Keras decodes the JPEGs every epoch
        "cats_dogs_scratch_flow": ["task=cats_dogs_scratch"],
        # book 5.2b (augmentation, dropout, batch 32) against the book's code verbatim (augmented flow)
        "cats_dogs_augmented_flow": ["task=cats_dogs_augmented"],
        "cats_dogs_augmented_flow_bf16": ["task=cats_dogs_augmented", "trainer.precision=bf16-mixed"],
        "imdb_embedding": ["task=imdb_embedding"],  # book 6.1: the last 20 words, Embedding(10000, 8)
        "imdb_conv1d": ["task=imdb_conv1d"],  # book 6.4's 1-D convnet on the last 500 words
        # book 6.2's LSTM: dlwp's Keras-exact cell (its loops in C, `native: true`; `_eager`: in torch
        # ops), then torch's fused nn.LSTM, against Keras' LSTM
        "imdb_lstm": ["task=imdb_lstm"],
        "imdb_lstm_eager": ["task=imdb_lstm", "+model.layers.1.native=false"],
        "imdb_lstm_torch": ["task=imdb_lstm", "model.layers.1.impl=torch"],
        # the Keras-exact cell's loop compiled (`compile: true`); its compile time is in the first epoch
        "imdb_lstm_compiled": ["task=imdb_lstm", "+model.layers.1.compile=true"],
        "imdb_simplernn": ["task=imdb_simplernn"],  # torch ops: no native loop for the SimpleRNN
        "imdb_bilstm": ["task=imdb_bilstm"],
        # book 6.3's GRU on the partial Jena copy, 500 steps x 128 per epoch as the book's fit_generator
        # (dlwp's Keras-exact GRU runs its loops in C, `native: true`; `_eager` runs them in torch ops)
        "jena_gru": ["task=jena_gru", *JENA_BOOK],
        "jena_gru_eager": ["task=jena_gru", *JENA_BOOK, "+model.layers.0.native=false"],
        "jena_gru_dropout": ["task=jena_gru_dropout", *JENA_BOOK],
        "jena_gru_stacked": ["task=jena_gru_stacked", *JENA_BOOK],
        "jena_bigru": ["task=jena_bigru", *JENA_BOOK],
        "jena_gru_torch": ["task=jena_gru", *JENA_BOOK, "model.layers.0.impl=torch"],
        "jena_gru_compiled": ["task=jena_gru", *JENA_BOOK, "+model.layers.0.compile=true"],
        "jena_dense": ["task=jena_dense", *JENA_BOOK],
        "jena_conv1d": ["task=jena_conv1d", *JENA_BOOK],  # book 6.4
        # book 6.4's conv + GRU at step 3 (lookback 720); every validation window, as the Keras side
        "jena_conv_gru": ["task=jena_conv_gru", *JENA_BOOK, "data.val_batches=null"],
        # book 8.1's char-LSTM on the whole corpus; the per-epoch sampling is off on both sides
        "nietzsche_char_lstm": ["task=nietzsche_char_lstm", "callbacks.samples.enabled=false"],
        "nietzsche_char_lstm_compiled": ["task=nietzsche_char_lstm", "callbacks.samples.enabled=false",
                                         "+model.layers.1.compile=true"],
        # torch's nn.LSTM (sigmoid gates, as Keras 3's default LSTM): oneDNN's fused LSTM on the CPU
        "nietzsche_char_lstm_torch": ["task=nietzsche_char_lstm", "callbacks.samples.enabled=false",
                                      "model.layers.1.impl=torch"],
        # ... with bfloat16 autocast: oneDNN's LSTM in bf16 (AVX512-BF16 here), weights and optimiser in fp32
        "nietzsche_char_lstm_bf16": ["task=nietzsche_char_lstm", "callbacks.samples.enabled=false",
                                     "model.layers.1.impl=torch", "trainer.precision=bf16-mixed"],
        # book 8.4, 3,750 batches of 16 an epoch; compared on the validation loss
        "mnist_vae": ["task=mnist_vae"]}  # fmt: skip
METRIC = {"mnist_vae": "val/loss"}
"""The dlwp metric a row compares where it is not the first of test/acc, val/mae, train/loss."""


def export(task: str, data_dir: Path, out: Path) -> Path:
    """The tensors dlwp trains on, as plain numpy arrays for the Keras side (for the `_flow` task:
    the book's `cats_and_dogs_small` directory tree, linked to the same JPEGs). A variant row exports
    what its Keras side (`KERAS_SIDE`) trains on."""
    task = KERAS_SIDE.get(task, task)
    path = out / f"{task}.npz"
    if task in ("cats_dogs_scratch_flow", "cats_dogs_augmented_flow"):
        return book_tree(data_dir / "dogs_vs_cats", out / "cats_and_dogs_small")
    if task in ("mnist_dense", "mnist_convnet", "mnist_vae"):
        with np.load(data_dir / "mnist/mnist.npz") as d:
            np.savez(path, **{k: d[k] for k in ("x_train", "y_train", "x_test", "y_test")})
    elif task == "imdb_dense":
        from dlwp.data.imdb import IMDBDataModule

        dm = IMDBDataModule(word_index=str(data_dir / "imdb/imdb_word_index.json"),
                            reviews=str(data_dir / "imdb/aclImdb_v1.tar.gz"))  # fmt: skip
        dm.setup()
        arrays = {}
        for split in ("train", "test"):
            x, y = dm.splits[split]  # padded index rows (-1 = padding)
            arrays[f"{split}_seq"] = np.where(x.numpy() < 0, 0, x.numpy()).astype(np.int32)
            arrays[f"{split}_len"] = (x.numpy() >= 0).sum(1)
            arrays[f"y_{split}"] = y.numpy()
        np.savez(path, **arrays)
    elif task in ("imdb_lstm", "imdb_simplernn", "imdb_bilstm", "imdb_conv1d", "imdb_embedding"):
        from dlwp.data.imdb import IMDBDataModule  # the padded sequences dlwp trains on

        imdb = data_dir / "imdb"  # the last 500 words (20 for imdb_embedding); imdb_bilstm's reversed, as its config
        dm = IMDBDataModule(word_index=str(imdb / "imdb_word_index.json"), reviews=str(imdb / "aclImdb_v1.tar.gz"),
                            encoding="sequence", maxlen=20 if task == "imdb_embedding" else 500,
                            reverse=task == "imdb_bilstm")  # fmt: skip
        dm.setup()
        np.savez(
            path, **{f"{k}_{s}": t.numpy() for s in ("train", "test") for k, t in zip("xy", dm.splits[s], strict=True)}
        )
    elif task.startswith("jena_"):  # dlwp's normalised array and split rows; Keras runs the book's generator
        from dlwp.data.jena import JenaDataModule

        window = {"lookback": 720, "step": 3} if task == "jena_conv_gru" else {}  # as the task's config
        dm = JenaDataModule(path=str(data_dir / "jena_climate/jena_climate_2009-01-01_2009-05-19_partial.csv.gz"),
                            variant="partial", **window)  # fmt: skip
        dm.setup("fit")
        [train], [val] = (dm._bounds(len(dm._arrays["cpu"]))[k] for k in ("train", "val"))
        np.savez(path, float_data=dm._arrays["cpu"].numpy(), lookback=dm.lookback, step=dm.step, delay=dm.delay,
                 batch_size=128, steps_per_epoch=500, train_rows=train, val_rows=val)  # fmt: skip
    elif task.startswith("nietzsche_char_lstm"):  # the text itself: the Keras side builds the book's one-hot arrays
        np.savez(path, text=np.array((data_dir / "nietzsche/nietzsche.txt").read_text(encoding="utf-8")))
    elif task == "cats_dogs_scratch":  # the decoded 150x150 uint8 images dlwp caches, as NHWC for Keras
        from dlwp.data.dogs_vs_cats import DogsVsCatsDataModule

        splits = DogsVsCatsDataModule(root=str(data_dir / "dogs_vs_cats")).load()
        arrays = {}
        for split in ("train", "val", "test"):
            arrays[f"x_{split}"] = splits[split].images.permute(0, 2, 3, 1).numpy()
            arrays[f"y_{split}"] = splits[split].labels.numpy()
        np.savez(path, **arrays)
    else:
        from dlwp.data.boston import BostonHousingDataModule

        dm = BostonHousingDataModule(path=str(data_dir / "boston_housing/boston_housing.npz"), standardize=False)
        dm.setup()
        np.savez(path, x_train=dm.splits["train"][0].numpy(), y_train=dm.splits["train"][1].numpy())
    return path


def book_tree(root: Path, tree: Path) -> Path:
    """cats_and_dogs_small/{train,validation,test}/{cats,dogs}/, as book 5.2 lays it out, of links to
    the images dlwp reads (the mirror's layout: see ../shared/datasets/MANIFEST.md)."""
    if tree.is_dir():  # a variant row's (`_bf16`) Keras side: the tree the row before it linked
        return tree
    sources = {"train": root / "cats_and_dogs_filtered/train",
               "validation": root / "cats_and_dogs_small_valtest_200px/validation",
               "test": root / "cats_and_dogs_small_valtest_200px/test"}  # fmt: skip
    for split, source in sources.items():
        (tree / split).mkdir(parents=True)
        for label in ("cats", "dogs"):
            (tree / split / label).symlink_to(source / label, target_is_directory=True)
    return tree


KERAS_SIDE = {
    "imdb_lstm_torch": "imdb_lstm",
    "imdb_lstm_eager": "imdb_lstm",
    "imdb_lstm_compiled": "imdb_lstm",
    "jena_gru_torch": "jena_gru",
    "jena_gru_eager": "jena_gru",
    "jena_gru_compiled": "jena_gru",
    "nietzsche_char_lstm_compiled": "nietzsche_char_lstm",
    "nietzsche_char_lstm_torch": "nietzsche_char_lstm",
    "nietzsche_char_lstm_bf16": "nietzsche_char_lstm",
    "cats_dogs_scratch_bf16": "cats_dogs_scratch",
    "cats_dogs_augmented_flow_bf16": "cats_dogs_augmented_flow",
}
"""Tasks whose Keras side is another task's (the same book code): it runs once per invocation."""
_keras_runs: dict[tuple[str, int, int], tuple[list[float], float, float]] = {}


def keras_run(task: str, arrays: Path, epochs: int, rep: int = 0) -> tuple[list[float], float, float]:
    key = (KERAS_SIDE.get(task, task), epochs, rep)
    if key not in _keras_runs:
        _keras_runs[key] = _keras_subprocess(key[0], arrays, epochs)
    return _keras_runs[key]


def _keras_subprocess(task: str, arrays: Path, epochs: int) -> tuple[list[float], float, float]:
    out = subprocess.run([str(KERAS_PY), str(HERE / "keras_book.py"), "--task", task, "--arrays", str(arrays),
                          "--epochs", str(epochs)], capture_output=True, text=True, check=True).stdout  # fmt: skip
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [r["epoch_s"] for r in rows if "epoch_s" in r], rows[-1]["test_metric"], rows[-1]["peak_rss_mb"]


def dlwp_run(task: str, data_dir: Path, epochs: int, runs: Path) -> tuple[list[float], float, float]:
    subprocess.run(["dlwp", "train", *DLWP[task], f"trainer.max_epochs={epochs}", f"paths.data_dir={data_dir}",
                    f"paths.runs_dir={runs}"], capture_output=True, check=True)  # fmt: skip
    run_dir = max((p for p in runs.glob("*/*") if (p / "run.json").exists()), key=lambda p: p.stat().st_mtime)
    from dlwp.record import read_metrics_csv

    rows = read_metrics_csv(run_dir / "metrics.csv")
    record = json.loads((run_dir / "run.json").read_text())
    final = record["metrics"]["final"]
    metric = final[METRIC[task]] if task in METRIC else final.get("test/acc", final.get("val/mae", final["train/loss"]))
    return [r["time/epoch_s"] for r in rows], metric, record["peak_rss_mb"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--tasks", nargs="+", default=list(DLWP))
    parser.add_argument("--write", type=Path, default=None)
    args = parser.parse_args()
    if not KERAS_PY.exists():
        print("keras benchmark skipped: run `bash bench/keras_setup.sh` first (it installs Keras + TensorFlow)")
        return 0
    data_dir = args.data_dir.resolve()
    work = Path(tempfile.mkdtemp(prefix="dlwp-keras-"))
    rows = []
    for task in args.tasks:
        arrays = export(task, data_dir, work)
        k_times, d_times, k_metric, d_metric, k_rss, d_rss = [], [], [], [], [], []
        for rep in range(args.reps):
            for which in ("keras", "dlwp") if rep % 2 == 0 else ("dlwp", "keras"):
                if which == "keras":
                    times, metric, rss = keras_run(task, arrays, args.epochs, rep)
                    k_times += times[1:]
                    k_metric.append(metric)
                    k_rss.append(rss)
                else:
                    times, metric, rss = dlwp_run(task, data_dir, args.epochs, work / "runs")
                    d_times += times[1:]
                    d_metric.append(metric)
                    d_rss.append(rss)
                print(f"{task} rep {rep + 1} {which:<5} epochs_s {' '.join(f'{t:.3f}' for t in times)} "
                      f"metric {metric:.4f}", flush=True)  # fmt: skip
        k, d = statistics.median(k_times), statistics.median(d_times)
        name = "val MAE (fold 0)" if task == "boston_fold" else "test acc"
        if task.startswith("jena"):
            name = f"val MAE after {args.epochs} epochs"
        if task.startswith("cats_dogs_"):
            name = f"test acc after {args.epochs} epochs"
        if task.startswith("nietzsche_char_lstm"):
            name = f"train loss after {args.epochs} epochs"
        if task == "mnist_vae":
            name = f"val loss after {args.epochs} epochs"
        rows.append((task, k, d, statistics.mean(k_metric), statistics.mean(d_metric), name, max(k_rss), max(d_rss)))
        print(f"{task}: keras {k:.3f} s/epoch, dlwp {d:.3f} s/epoch, dlwp speed-up x{k / d:.2f}; {name} keras "
              f"{statistics.mean(k_metric):.4f}, dlwp {statistics.mean(d_metric):.4f}; peak RSS keras "
              f"{max(k_rss):.0f} MB, dlwp {max(d_rss):.0f} MB", flush=True)  # fmt: skip
    if args.write:
        probe = "import keras, tensorflow as tf; print(keras.__version__, tf.__version__)"
        versions = subprocess.run([str(KERAS_PY), "-c", probe], capture_output=True, text=True).stdout.split()
        lines = [f"Generated by `python bench/keras_compare.py --epochs {args.epochs} --reps {args.reps}` on "
                 f"{time.strftime('%Y-%m-%d')}: Keras {versions[0]} + TensorFlow {versions[1]} (CPU), 2 threads each; "
                 f"median epoch time, first epoch of each run not counted; metric = mean over runs.", "",
                 "| task | Keras (book code) | dlwp | dlwp speed-up | metric: Keras / dlwp | peak RSS Keras / dlwp |",
                 "|---|---|---|---|---|---|"]  # fmt: skip
        fresh = {t: f"| {t} | {k:.3f} s | {d:.3f} s | **x{k / d:.2f}** | {n}: {km:.4f} / {dm:.4f} "
                    f"| {kr:.0f} / {dr:.0f} MB |" for t, k, d, km, dm, n, kr, dr in rows}  # fmt: skip
        kept = {t: line for t, line in block_rows(args.write, "keras").items() if t not in fresh}
        if kept:  # tasks not run this time keep their row, marked with the date it came from
            lines[0] += f" Rows of tasks not re-run ({', '.join(kept)}) are kept from the run before (see git log)."
        ordered = [t for t in DLWP if t in fresh or t in kept]
        lines += [fresh.get(t) or kept[t] for t in ordered]
        write_block(args.write, "keras", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
