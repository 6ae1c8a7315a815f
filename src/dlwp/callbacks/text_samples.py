"""Book 8.1's loop body: after every epoch, text sampled at several temperatures from a seed taken
at a random place in the corpus, written to `samples/epoch_NNN.txt` and to the run's trackers."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback

from dlwp.sampling import sample_text


class TextSamples(Callback):
    """Sample `length` characters at each of `temperatures` every `every_n_epochs` epochs. The seed
    text's place and the draws are seeded by (run seed, epoch), so a rerun writes the same text."""

    def __init__(self, run_dir: Path, temperatures: list[float], length: int = 400, every_n_epochs: int = 1,
                 seed: int = 0) -> None:  # fmt: skip
        self.dir = Path(run_dir) / "samples"
        self.temperatures, self.length = list(temperatures), length
        self.every_n_epochs, self.seed = every_n_epochs, seed

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every_n_epochs or not trainer.is_global_zero:
            return
        data = trainer.datamodule
        seed = self.seed * 100_003 + epoch
        seed_codes = data.seed_window(seed)
        seed_text = data.decode(seed_codes)
        texts = sample_text(pl_module.network, seed_codes, self.length, self.temperatures, data.chars, data.maxlen,
                            seed=seed)  # fmt: skip
        self.dir.mkdir(parents=True, exist_ok=True)
        body = [f'--- epoch {epoch}, generating with seed: "{seed_text}"']
        for t, text in zip(self.temperatures, texts, strict=True):
            body += [f"------ temperature: {t}", seed_text + text]
        (self.dir / f"epoch_{epoch:03d}.txt").write_text("\n".join(body) + "\n", encoding="utf-8")
        log_texts(trainer.loggers, epoch, seed_text, dict(zip(self.temperatures, texts, strict=True)))


def log_texts(loggers: list, epoch: int, seed_text: str, texts: dict[float, str]) -> None:
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            for t, text in texts.items():
                logger.experiment.add_text(f"samples/temperature_{t}", f"{seed_text}|{text}", global_step=epoch)
            logger.experiment.flush()
        elif isinstance(logger, WandbLogger):
            import wandb

            rows = [[epoch, t, seed_text, text] for t, text in texts.items()]
            table = wandb.Table(columns=["epoch", "temperature", "seed", "text"], data=rows)
            logger.experiment.log({"samples/text": table, "epoch": epoch})
