"""Run the visualisation commands at the book's settings and write what they measured into docs.

    python bench/visualize.py                                # offline defaults, 2 cores: ~15 min
    python bench/visualize.py --write docs/VISUALIZING.md    # also refresh the generated block there
    python bench/visualize.py --device cuda --only gradcam dream   # on a GPU, some of them

Each command runs as users run it (`dlwp visualize gradcam`, `dlwp dream`, ...), with its defaults:
the offline EfficientNet-Lite0 and scikit-image's photos. The numbers come from each run's
`run.json`; the pictures (made from scikit-image's photos, which ship with its wheel) are copied,
downscaled, into docs/figures/visualize/. Exits non-zero only on error, never on a slow result.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from markdown_block import write_block  # bench/markdown_block.py

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "docs" / "figures" / "visualize"
COMMANDS = {
    "gradcam": ["visualize", "gradcam"],
    "filters": ["visualize", "filters"],
    "activations": ["visualize", "activations"],
    "dream": ["dream"],
    "style": ["style"],
}
PICTURES = {  # run picture -> docs figure (longer side in px)
    "gradcam": [("gradcam", 640)],
    "filters": [("00_blocks.1.0.bn1", 400), ("02_blocks.3.0.bn1", 400)],
    "activations": [("02_blocks.1.0.bn1", 640)],
    "dream": [("dream", 350)],
    "style": [("side_by_side", 900)],
}


def run(name: str, runs: Path, device: str) -> dict:
    cmd = [sys.executable, "-m", "dlwp.cli", *COMMANDS[name], f"paths.runs_dir={runs}", f"device={device}",
           "progress=false"]  # fmt: skip
    print("$", " ".join(cmd[2:]), flush=True)
    start = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    kind = "visualize" if COMMANDS[name][0] == "visualize" else name
    run_dir = sorted((runs / kind).iterdir())[-1]
    rec = json.loads((run_dir / "run.json").read_text())
    print(f"  done in {time.time() - start:.0f} s: {run_dir}", flush=True)
    return {"dir": run_dir, "record": rec}


def copy_pictures(name: str, run_dir: Path) -> list[str]:
    from PIL import Image

    FIGURES.mkdir(parents=True, exist_ok=True)
    out = []
    for picture, side in PICTURES.get(name, []):
        with Image.open(run_dir / "images" / f"{picture}.png") as image:
            image = image.convert("RGB")
            image.thumbnail((side, side))
            target = FIGURES / f"{name}_{picture.split('_', 1)[-1] if picture[0].isdigit() else picture}.jpg"
            image.save(target, quality=85)
            out.append(target.relative_to(ROOT / "docs").as_posix())
    return out


def fmt(x: float, digits: int = 3) -> str:
    return f"{x:.{digits}g}" if abs(x) >= 1e4 or abs(x) < 1e-2 else f"{x:.{digits}f}"


def section(name: str, result: dict) -> list[str]:
    rec, m = result["record"], result["record"].get("metrics", {})
    wall = rec.get("wall_time_s", 0)
    lines = [f"### {name}", ""]
    if name == "gradcam":
        top = ", ".join(f"{t['class']} {t['probability']:.3f}" for t in m["top"])
        lines += [
            f"- Top 3 on scikit-image's `chelsea`: {top}.",
            f"- Grad-CAM at `{m['layer']}` (map {m['heatmap_shape'][0]}x{m['heatmap_shape'][1]}): "
            f"**{m['seconds']:.2f} s** (forward + backward, 224 px); the whole command {wall:.0f} s.",
        ]
    elif name == "filters":
        lines += ["| layer | loss at step 0 | loss at step 40 | ascended | seconds (64 filters) |",
                  "|---|---|---|---|---|"]  # fmt: skip
        for layer, v in m["layers"].items():
            cells = [
                layer,
                f"{v['loss_first']:.3f}",
                f"{v['loss_last']:.3f}",
                str(v["ascended"]),
                f"{v['seconds']:.1f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    elif name == "activations":
        lines += [f"- {len(m['layers'])} layers of the ImageNet backbone on `chelsea` (150 px): "
                  + ", ".join(f"`{k}` {v}" for k, v in m["layers"].items()) + f"; {wall:.0f} s."]  # fmt: skip
    elif name == "dream":
        lines += ["| octave | shape | loss first | loss last | iterations | ascended | seconds |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for i, o in enumerate(m["octaves"]):
            lines.append(f"| {i} | {o['shape'][0]}x{o['shape'][1]} | {o['loss_first']:.3f} | {o['loss_last']:.3f} | "
                         f"{o['iterations']} | {o['ascended']} | {o['seconds']:.2f} |")  # fmt: skip
        lines += ["", f"Mean **{m['seconds_per_octave']:.2f} s per octave**; an octave ends early once its loss "
                  "passes `max_loss` (10), as the book's did (its octaves 2 and 3 stopped after 9 and 6 "
                  "iterations)."]  # fmt: skip
    elif name == "style":
        w = m["weights"]
        lines += [f"- Content `{m['content_layer']}`, style {', '.join(f'`{s}`' for s in m['style_layers'])}; "
                  f"weights content {w['content']:g}, style {w['style']:g}, "
                  f"total variation {w['total_variation']:g}.",
                  f"- Loss: {fmt(m['loss_initial'])} before, {fmt(m['loss_first'])} after iteration 1, "
                  f"{fmt(m['loss_last'])} after iteration 20: **{m['fall_from_first']:.1f}x below the first "
                  f"iteration** (book, VGG19: 7.41e9 -> 5.00e8, 14.8x).",
                  f"- **{m['seconds_per_iteration']:.1f} s per iteration** ({m['evaluations_per_iteration']} loss "
                  f"evaluations, 400 px high); the book's run printed 12-13 s per iteration on its "
                  "machine."]  # fmt: skip
    return [*lines, ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "visualize-bench")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", nargs="*", default=list(COMMANDS), choices=list(COMMANDS))
    parser.add_argument("--write", type=Path, default=None, help="refresh the generated block of this markdown file")
    args = parser.parse_args()
    results = {name: run(name, args.runs, args.device) for name in args.only}
    import torch

    threads = torch.get_num_threads()
    lines = [f"Measured {time.strftime('%Y-%m-%d')} with `python bench/visualize.py` on {args.device} "
             f"({platform.processor() or platform.machine()}, {threads} torch threads); defaults: the offline "
             "EfficientNet-Lite0 backbone, the book's sizes and steps.", ""]  # fmt: skip
    for name, result in results.items():
        lines += section(name, result)
        lines += [f"![{name}]({p})" for p in copy_pictures(name, result["dir"])] + [""]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_block(args.write, "visualize", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
