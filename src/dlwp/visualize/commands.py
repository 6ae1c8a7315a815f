"""`dlwp visualize activations|filters|gradcam`, `dlwp dream`, `dlwp style`: a config in, a run
directory of pictures out (see `session`). Each runs offline with no arguments."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from dlwp.errors import ConfigError
from dlwp.visualize import images
from dlwp.visualize.networks import Inspected, open_backbone, open_checkpoint
from dlwp.visualize.session import Session, Timer, progress


def _network(cfg: DictConfig, session: Session, checkpoint: str | None = None) -> Inspected:
    if checkpoint:
        inspected = open_checkpoint(checkpoint, Path(cfg.paths.runs_dir))
    else:
        inspected = open_backbone(cfg.backbone, cfg.weights, cfg.download)
    session.network(inspected.identity)
    return inspected.to(session.device)


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


# -- dlwp visualize ---------------------------------------------------------------------------------


def visualize(cfg: DictConfig) -> dict[str, Any]:
    if OmegaConf.is_missing(cfg, "what"):
        raise ConfigError("say what to show: dlwp visualize activations|filters|gradcam [key=value ...]")
    what = str(cfg.what.name if hasattr(cfg.what, "name") else cfg.what)
    with Session(cfg, f"visualize-{what}") as session:
        {"activations": _activations, "filters": _filters, "gradcam": _gradcam}[what](cfg, session)
    return session.record.data


def _activations(cfg: DictConfig, session: Session) -> None:
    from dlwp.visualize.activations import activations, figure

    inspected = _network(cfg, session, cfg.ckpt_path)
    size = inspected.input_size or ((cfg.size, cfg.size) if cfg.size else (150, 150))
    session.inputs(image=cfg.image)
    image, _ = images.load(cfg.image, size=size)
    names = list(cfg.layers) if cfg.layers else list(inspected.preset("activations"))[: cfg.max_layers]
    session.image("input", image)
    maps = activations(inspected, image.to(session.device), names)
    shapes = {}
    for i, (name, out) in enumerate(maps.items()):
        session.image(f"{i:02d}_{name}", figure(out, name, cfg.images_per_row))
        shapes[name] = list(out.shape)
    session.metrics.update(layers=shapes)


def _filters(cfg: DictConfig, session: Session) -> None:
    from dlwp.visualize.filters import layer_grid, patterns

    inspected = _network(cfg, session, cfg.ckpt_path)
    names = list(cfg.layers) if cfg.layers else list(inspected.preset("filters"))
    generator = torch.Generator().manual_seed(cfg.seed)
    per_layer: dict[str, Any] = {}
    with progress(len(names) * cfg.steps, "filter patterns", cfg.progress) as bar:
        for i, name in enumerate(names):
            with Timer() as timer:
                x, history = patterns(inspected, name, list(range(cfg.filters)), cfg.tile, cfg.steps, cfg.step_size,
                                      generator, session.device, bar)  # fmt: skip
            for step, loss in enumerate(history):
                session.loss(layer=name, step=step, loss=loss)
            columns = 8 if cfg.filters >= 8 else cfg.filters
            session.image(f"{i:02d}_{name}", layer_grid(x, columns=columns))
            per_layer[name] = {"loss_first": history[0], "loss_last": history[-1], "seconds": round(timer.seconds, 3),
                               "ascended": history[-1] > history[0]}  # fmt: skip
    session.metrics.update(layers=per_layer)


def _gradcam(cfg: DictConfig, session: Session) -> None:
    from dlwp.visualize.gradcam import figure, gradcam, top

    inspected = _network(cfg, session)
    layer = cfg.layers[0] if cfg.layers else inspected.preset("gradcam")
    session.inputs(image=cfg.image)
    size = cfg.size or 224
    image, _ = images.load(cfg.image, size=(size, size))
    with Timer() as timer:
        explained = gradcam(inspected, image.to(session.device), layer, cfg.class_index, cfg.score)
    ranked = top(explained.probabilities, inspected.classes, cfg.top)
    index = explained.class_index
    target = {"index": index, "probability": float(explained.probabilities[index]),
              "class": inspected.classes[index] if inspected.classes else str(index)}  # fmt: skip
    overlaid = images.overlay(image, explained.heatmap)
    session.image("input", image)
    session.image("heatmap", explained.heatmap)
    session.image("overlay", overlaid)
    session.image("gradcam", figure(image, overlaid, ranked, target))
    (session.run_dir / "predictions.txt").write_text(
        "".join(f"{r['probability']:.4f}  {r['index']:4d}  {r['class']}\n" for r in ranked)
    )
    session.metrics.update(layer=layer, top=ranked, explained=target, seconds=round(timer.seconds, 3),
                           heatmap_shape=list(explained.heatmap.shape))  # fmt: skip
    print("\n".join(f"  {r['probability']:.3f}  {r['class']}" for r in ranked))


# -- dlwp dream ---------------------------------------------------------------------------------------


def dream(cfg: DictConfig) -> dict[str, Any]:
    from dlwp.visualize.dream import deep_dream

    with Session(cfg, "dream") as session:
        inspected = _network(cfg, session)
        coefficients = {str(k): float(v) for k, v in (_plain(cfg.layers) or inspected.preset("dream")).items()}
        session.inputs(image=cfg.image)
        image, _ = images.load(cfg.image, max_side=cfg.max_side)
        session.image("input", image)
        octaves: list[dict[str, Any]] = []

        def on_octave(i: int, shape, picture, losses, seconds) -> None:
            for step, loss in enumerate(losses):
                session.loss(octave=i, step=step, loss=loss)
            session.image(f"octave_{i}", picture)
            octaves.append({"shape": list(shape), "loss_first": losses[0], "loss_last": losses[-1],
                            "iterations": len(losses), "seconds": round(seconds, 3),
                            "ascended": losses[-1] > losses[0]})  # fmt: skip

        with progress(cfg.octaves * cfg.iterations, "dream", cfg.progress) as bar:
            dreamt, _ = deep_dream(inspected, image, coefficients, cfg.octaves, cfg.octave_scale, cfg.iterations,
                                   cfg.step, cfg.max_loss, on_octave, bar)  # fmt: skip
        session.image("dream", dreamt)
        session.metrics.update(layers=coefficients, octaves=octaves,
                               seconds_per_octave=round(statistics.mean(o["seconds"] for o in octaves), 3))  # fmt: skip
    return session.record.data


# -- dlwp style ---------------------------------------------------------------------------------------


def style(cfg: DictConfig) -> dict[str, Any]:
    from dlwp.visualize.style import StyleLoss, Weights, transfer

    with Session(cfg, "style") as session:
        inspected = _network(cfg, session)
        preset = inspected.presets.get("style", {})
        content_layer = cfg.content_layer or preset.get("content")
        style_layers = list(cfg.style_layers or preset.get("style") or [])
        if not content_layer or not style_layers:
            inspected.preset("style")  # the error, with the valid layer names
        session.inputs(content=cfg.content, style=cfg.style)
        content, _ = images.load(cfg.content, height=cfg.height)
        style_image, _ = images.load(cfg.style, size=tuple(content.shape[1:]))
        device = session.device
        content255, style255 = content[None].to(device) * 255, style_image[None].to(device) * 255
        given = {"content": cfg.content_weight, "style": cfg.style_weight, "total_variation": cfg.tv_weight}
        weights = Weights(**{**vars(Weights()), **preset.get("weights", {}),
                             **{k: v for k, v in given.items() if v is not None}})  # fmt: skip
        loss_fn = StyleLoss(inspected, content255, style255, content_layer, style_layers, weights)
        with torch.no_grad():
            initial, _ = loss_fn(content255)
        seconds: list[float] = []

        with progress(cfg.iterations, "style", cfg.progress) as bar:

            def on_iteration(i: int, total: float, parts: dict[str, float], took: float) -> None:
                session.loss(iteration=i, loss=total, **parts)
                seconds.append(took)
                bar.update(1)
                bar.set_postfix(loss=f"{total:.4g}")

            result, losses = transfer(loss_fn, content255, cfg.iterations, cfg.max_eval, on_iteration)
        picture = (result[0] / 255).clamp(0, 1).cpu()
        session.image("content", content)
        session.image("style", style_image)
        session.image("result", picture)
        session.image("side_by_side", torch.cat([content, style_image, picture], dim=2))
        session.metrics.update(
            content_layer=content_layer, style_layers=style_layers, weights=vars(weights), loss_initial=float(initial),
            loss_first=losses[0], loss_last=losses[-1], fall_from_first=losses[0] / losses[-1] if losses[-1] else None,
            seconds_per_iteration=round(statistics.mean(seconds), 3), evaluations_per_iteration=cfg.max_eval,
        )  # fmt: skip
    return session.record.data
