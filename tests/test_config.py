"""The typed config tree: every task composes and validates; typos and wrong types fail at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ValidationError

from conftest import ROOT, dlwp, run_dirs
from dlwp.config import validate
from dlwp.config.schema import register
from dlwp.errors import ConfigError
from dlwp.paths import conf_dir, register_resolvers

TASKS = sorted(p.stem for p in (ROOT / "conf" / "task").glob("*.yaml"))


def compose_train(*overrides: str):
    register()
    register_resolvers()
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize("task", TASKS)
def test_every_task_composes_validates_and_builds(task, tmp_path):
    from omegaconf import OmegaConf

    from dlwp.config import build
    from dlwp.task import BookTask

    composed = compose_train(f"task={task}", f"paths.data_dir={tmp_path}")
    if OmegaConf.is_missing(composed, "init_from"):  # a task that starts from another run (5.3c)
        with pytest.raises(ConfigError, match="init_from"):
            validate(composed)
        composed = compose_train(f"task={task}", f"paths.data_dir={tmp_path}", "init_from=runs/x")
    cfg = validate(composed)
    assert cfg.task.name == task, "a task's `name` must match its file name (runs are filed under it)"
    assert cfg.task.section and cfg.task.title and cfg.task.dataset
    datamodule, module = build(cfg)  # the real data module, nn.Module and LightningModule; no data is read
    assert isinstance(module, BookTask)
    # a network with nothing to learn is only evaluated (jena_naive): trainer.max_epochs=0 says so
    assert (sum(p.numel() for p in module.network.parameters()) > 0) == (cfg.trainer.max_epochs > 0)
    assert cfg.task.monitor in module.metric_names()
    assert datamodule.batch_size == cfg.data.batch_size


def test_book_defaults_are_keras_parity():
    cfg = compose_train("task=mnist_dense")
    opt = validate(cfg).task.optimizer
    assert (opt.name, opt.lr, opt.rho, opt.eps) == ("rmsprop", 1e-3, 0.9, 1e-8)
    assert cfg.model.init == "keras" and cfg.task.keras_loss
    assert (cfg.data.batch_size, cfg.trainer.max_epochs) == (128, 5)


def test_unknown_trainer_key_fails_naming_it():
    with pytest.raises(ConfigCompositionException) as err:
        compose_train("trainer.max_epoch=3")
    assert "max_epoch" in str(err.value) + str(err.value.__cause__)


def test_wrong_type_fails_naming_the_key():
    with pytest.raises(ConfigCompositionException) as err:
        compose_train("trainer.max_epochs=three")
    assert isinstance(err.value.__cause__, ValidationError)
    assert "trainer.max_epochs" in str(err.value.__cause__) and "three" in str(err.value.__cause__)


def test_model_key_typo_suggests_the_right_key():
    with pytest.raises(ConfigError, match=r"'model.hiden' \(did you mean 'model.hidden'\?\)"):
        validate(compose_train("+model.hiden=3"))


def test_model_value_of_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"model.hidden\[0\].*abc"):
        validate(compose_train("model.hidden=[abc]"))


def test_choice_outside_allowed_values_is_named():
    with pytest.raises(ConfigError, match=r"'data.val_from' must be one of \['head', 'tail', 'test'\]"):
        validate(compose_train("data.val_from=middle"))


def test_seed_zero_is_kept():
    assert compose_train("seed=0").seed == 0


def test_cli_rejects_typo_at_start_up_and_leaves_no_run_dir(tmp_path):
    runs = tmp_path / "runs"
    proc = dlwp("train", "+model.hiden=3", runs=runs, check=False, timeout=120)
    assert proc.returncode == 2
    assert "dlwp train: error: unknown key 'model.hiden'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert run_dirs(runs) == [], "a run rejected at start-up must not leave a directory behind"
    proc = dlwp("train", "trainer.max_epoch=3", runs=runs, check=False, timeout=120)
    assert proc.returncode != 0 and "max_epoch" in proc.stderr


def test_task_without_validation_split_cannot_monitor_val(tmp_path):
    from dlwp.train import train

    cfg = compose_train("data.val_size=0", f"paths.runs_dir={tmp_path}")
    with pytest.raises(ConfigError, match="needs a validation split"):
        train(cfg)
    status = [p for p in Path(tmp_path).glob("digits_dense/*/run.json")]
    assert status, "the failed run is recorded"


def test_a_task_s_book_reference_is_its_own_not_an_inherited_one():
    """A task derived from another (`defaults: [imdb_conv1d]`) that declares its own `reference`
    must not keep the parent's numbers: `reference: {}` merges into them, so the docs' "book"
    column showed imdb_conv1d's val acc beside the TensorBoard demo. Set inherited keys to null."""
    import yaml
    from omegaconf import OmegaConf

    from dlwp.paths import conf_dir, register_resolvers

    register()
    register_resolvers()
    leaks = {}
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        tasks = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((ROOT / "conf" / "task").glob("*.yaml"))}
        for name, spec in tasks.items():
            own = (spec.get("task") or {}).get("reference")
            if own is None:
                continue  # no reference of its own: the parent's is meant (e.g. the clipnorm twin)
            if not any(isinstance(d, str) and d in tasks for d in spec.get("defaults") or []):
                continue  # no parent task to inherit from (composing each task costs ~0.3 s)
            composed = OmegaConf.to_container(compose("train", overrides=[f"task={name}"]).task.reference)
            declared = {k: v for k, v in own.items() if v is not None}
            if {k: v for k, v in (composed or {}).items() if v is not None} != declared:
                leaks[name] = composed
    assert not leaks, leaks
