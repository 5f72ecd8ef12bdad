"""The README's main job, on the bundled digits, in a few minutes on a laptop's CPU.

    python examples/quickstart.py [--out runs/quickstart] [--entry resnet20-cbam.digits] [-- FIT OPTIONS]

Options after ``--`` go to ``attnzoo fit`` after the recipe, e.g. ``-- --trainer.max_epochs 5``.

1. trains the entry from its recipe (``attnzoo fit --config tasks/classify/<entry>.yaml``);
2. tests the last checkpoint and saves it as a zoo folder (``attnzoo publish --ckpt_path ... --output ...``);
3. loads that folder back by path (``attnzoo.load``) and tests the loaded network again;
4. prints the metrics beside those the zoo records for the entry;
5. draws the attention maps on a few test digits (``attnzoo show``) into ``<out>/attention_maps.png``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lightning.pytorch as pl

import attnzoo
from attnzoo.cli import AttnzooCLI
from attnzoo.cli import main as attnzoo_command
from attnzoo.data import DigitsData
from attnzoo.tasks import ImageClassifier
from attnzoo.zoo.catalog import resolve

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/quickstart", help="folder for logs, checkpoints, the model and the picture")
    parser.add_argument("--entry", default="resnet20-cbam.digits", help="a digits zoo entry with a recipe")
    parser.add_argument("overrides", nargs="*", help="after --: `attnzoo fit` options that override the recipe's")
    args = parser.parse_args()
    out, recipe = Path(args.out), ROOT / "tasks" / "classify" / f"{args.entry}.yaml"
    if not recipe.is_file():
        parser.error(f"no recipe {recipe}; the digits recipes are {', '.join(p.stem for p in recipe.parent.glob('*.yaml'))}")

    print(f"== 1. attnzoo fit --config {recipe.relative_to(ROOT)}")
    cli = AttnzooCLI(args=["fit", "--config", str(recipe), "--trainer.default_root_dir", str(out), *args.overrides])
    last = str(Path(cli.trainer.checkpoint_callback.dirpath) / "last.ckpt")

    folder = out / args.entry
    print(f"== 2. attnzoo publish --ckpt_path {last} --output {folder}")
    if attnzoo_command(["publish", "--ckpt_path", last, "--output", str(folder), "--name", args.entry,
                        "--recipe", str(recipe)]) != 0:
        return 1

    print(f"== 3. attnzoo.load({str(folder)!r}) and test it again")
    model = attnzoo.load(folder)
    trainer = pl.Trainer(accelerator="auto", devices=1, logger=False, enable_model_summary=False)
    data = DigitsData()
    loaded = trainer.test(ImageClassifier(model, num_classes=data.num_classes), datamodule=data, verbose=False)[0]

    print("\n== 4. metrics (digits test split, 270 images)\n")
    recorded = resolve(args.entry).metrics
    card = {line.split("|")[1].strip(): float(line.split("|")[2]) for line in (folder / "README.md").read_text().splitlines()
            if line.startswith("| test/")}
    print("| metric | this run (card) | loaded back | zoo entry |")
    print("|---|---:|---:|---:|")
    for metric in ("test/top1", "test/top5"):
        zoo = recorded.get(f"digits_{metric.replace('/', '_')}")
        print(f"| {metric} | {100 * card[metric]:.2f} % | {100 * loaded[metric]:.2f} % | "
              f"{'-' if zoo is None else f'{zoo:.2f} %'} |")

    picture = out / "attention_maps.png"
    print(f"\n== 5. attnzoo show {folder} --output {picture}")
    return attnzoo_command(["show", str(folder), "--output", str(picture)])


if __name__ == "__main__":
    sys.exit(main())
