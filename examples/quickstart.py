"""The README's main job: the four tasks on bundled data, in a few minutes on a laptop's CPU.

    python examples/quickstart.py [--out runs/quickstart] [--entry resnet20-cbam.digits] [--short] [-- FIT OPTIONS]

Options after ``--`` go to ``attnzoo fit`` after the classification recipe, e.g. ``-- --trainer.max_epochs 5``;
``--short`` scores the detector on 20 test scenes instead of 200 (for the tests).

Classification, trained here:

1. trains the entry from its recipe (``attnzoo fit --config tasks/classify/<entry>.yaml``);
2. tests the last checkpoint and saves it as a zoo folder (``attnzoo publish --ckpt_path ... --output ...``);
3. loads that folder back by path (``attnzoo.load``) and tests the loaded network again;
4. prints the metrics beside those the zoo records for the entry;
5. draws the attention maps on a few test digits (``attnzoo show``) into ``<out>/attention_maps.png``.

The other tasks, from the zoo's entries, loaded by name:

6. detection: ``fcos-resnet18n-gc.shapes`` on ShapesData's held-out test scenes, COCO mAP@0.5 beside the
   card's, its boxes and attention maps drawn into ``<out>/detection.png``;
7. restoration: ``rir-se.gray-s25`` and ``rir-se.gray-q10`` on the four held-out photos (the benchmark's
   protocol), PSNR / SSIM beside BM3D's (from the card) and the JPEG input's, degraded | restored | clean
   drawn into ``<out>/denoising.png`` and ``<out>/deartifacting.png``;
8. video re-ID: the entry with the best test mAP ranks TrackletsData's test queries against the gallery,
   rank-1 / mAP beside the card's, queries and their best matches drawn into ``<out>/reid.png``;
9. your own data: a folder of clean photos written the way a user keeps theirs (``<out>/my-photos/train``,
   ``val``) and one short fine-tuning run of ``rir-se.gray-s25`` on it (``attnzoo fit --model ImageRestorer
   --model.pretrained true --data ImageFolderRestorationData --data.root ...``);
10. one table: task, entry, metric, here, on the card.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

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
    parser.add_argument("--short", action="store_true", help="score the detector on 20 test scenes, not 200")
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
    if attnzoo_command(["show", str(folder), "--output", str(picture)]) != 0:
        return 1
    rows = [("classification", args.entry, "top-1 %", 100 * loaded["test/top1"], recorded.get("digits_test_top1"))]
    rows += detection(out, 20 if args.short else None)
    rows += restoration(out)
    rows += reid(out)
    rows += finetune(out)
    print("\n== 10. every task: here and on the card\n")
    print("| task | entry | metric | here | card |")
    print("|---|---|---|---:|---:|")
    for task, entry, metric, here, card in rows:
        print(f"| {task} | {entry} | {metric} | {here:.2f} | {'-' if card is None else f'{card:.2f}'} |")
    return 0


def show(entry: str, picture: Path) -> None:
    if attnzoo_command(["show", entry, "--output", str(picture)]) != 0:
        raise SystemExit(f"attnzoo show {entry} failed")


def detection(out: Path, count: int | None) -> list[tuple]:
    from attnzoo.data import ShapesData
    from attnzoo.tasks.detection import ImageMeanAveragePrecision

    entry = "fcos-resnet18n-gc.shapes"
    print(f"\n== 6. detection: attnzoo.load({entry!r}) on ShapesData's test scenes")
    model = attnzoo.load(entry)
    data = ShapesData()
    data.setup("test")
    metric = ImageMeanAveragePrecision()
    seen = 0
    with torch.no_grad():
        for images, targets in data.test_dataloader():
            metric.update(model(images), targets)
            seen += len(images)
            if count is not None and seen >= count:
                break
    map_50 = float(metric.compute()["map_50"])
    show(entry, out / "detection.png")
    scenes = f"{seen} test scenes" + ("" if count is None else ", the card: 200")
    return [("detection", entry, f"mAP@0.5 ({scenes})", map_50, resolve(entry).metrics.get("shapes_test_map_50"))]


def restoration(out: Path) -> list[tuple]:
    from attnzoo.data.photos import TEST_PHOTOS, protocol_pair
    from attnzoo.tasks.restoration import psnr, ssim

    rows = []
    for entry, kind, level, picture in (("rir-se.gray-s25", "gaussian", 25, "denoising.png"),
                                        ("rir-se.gray-q10", "jpeg", 10, "deartifacting.png")):
        print(f"\n== 7. restoration: attnzoo.load({entry!r}) on the held-out photos ({', '.join(TEST_PHOTOS)})")
        model = attnzoo.load(entry)
        scores = {"restored": [], "input": []}
        for name in TEST_PHOTOS:
            degraded, clean = (torch.from_numpy(x).float()[None, None] for x in protocol_pair(name, kind, level))
            with torch.no_grad():
                restored = model(degraded)
            for key, image in (("restored", restored), ("input", degraded.clamp(0, 1))):
                scores[key].append((float(psnr(image, clean)[0]), float(ssim(image, clean)[0])))
        mean = {key: [sum(column) / len(column) for column in zip(*values)] for key, values in scores.items()}
        card = resolve(entry).metrics
        rows.append(("restoration", entry, "PSNR dB", mean["restored"][0], card.get("photos_test_psnr")))
        rows.append(("restoration", entry, "SSIM", mean["restored"][1], card.get("photos_test_ssim")))
        if kind == "gaussian":
            rows.append(("restoration", "BM3D (card)", "PSNR dB", card["photos_bm3d_psnr"], card["photos_bm3d_psnr"]))
        else:
            rows.append(("restoration", "JPEG input", "PSNR dB", mean["input"][0], card.get("photos_input_psnr")))
        show(entry, out / picture)
    return rows


def reid(out: Path) -> list[tuple]:
    from attnzoo.backbones.video import embed_loader
    from attnzoo.data import TrackletsData
    from attnzoo.tasks.reid_metrics import evaluate_ranking
    from attnzoo.zoo.catalog import catalog

    entries = {name: e for name, e in catalog().items() if e.task == "reid"}
    entry = max(entries, key=lambda name: entries[name].metrics["tracklets_test_mAP"])
    print(f"\n== 8. video re-ID: attnzoo.load({entry!r}) ranks TrackletsData's test queries")
    model = attnzoo.load(entry)
    _, height, width = model.pretrained_cfg["input_size"]
    seq_len = model.pretrained_cfg["seq_len"]
    data = TrackletsData(frame_size=(height, width), seq_len=seq_len)
    data.trainer = None
    query, gallery = (embed_loader(model, loader, seq_len) for loader in data.test_dataloader())
    result = evaluate_ranking(*query, *gallery)
    show(entry, out / "reid.png")
    card = entries[entry].metrics
    return [("video re-ID", entry, "rank-1 %", 100 * float(result["cmc"][0]), card.get("tracklets_test_rank1")),
            ("video re-ID", entry, "mAP %", 100 * result["mAP"], card.get("tracklets_test_mAP"))]


def finetune(out: Path) -> list[tuple]:
    import numpy as np
    import skimage.data
    from PIL import Image
    from skimage.color import rgb2gray

    folder = out / "my-photos"
    print(f"\n== 9. your own photos: {folder}/train and /val, and a short fine-tuning of rir-se.gray-s25 on them")
    for split, names in (("train", ("astronaut", "coffee", "chelsea", "rocket")), ("val", ("immunohistochemistry",))):
        (folder / split).mkdir(parents=True, exist_ok=True)
        for name in names:
            grey = (rgb2gray(getattr(skimage.data, name)()) * 255).round().astype(np.uint8)
            Image.fromarray(grey).save(folder / split / f"{name}.png")
    cli = AttnzooCLI(args=[
        "fit", "--model", "ImageRestorer", "--model.network", "rir-se.gray-s25", "--model.pretrained", "true",
        "--model.optimizer.lr", "1e-5", "--data", "ImageFolderRestorationData", "--data.root", str(folder),
        "--data.patch_size", "64", "--data.train_size", "16", "--data.batch_size", "8", "--data.num_workers", "0",
        "--trainer.max_epochs", "1", "--trainer.default_root_dir", str(out / "finetune"),
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    ])
    return [("restoration", "rir-se.gray-s25, fine-tuned", "PSNR dB (your val photo)",
             float(cli.trainer.callback_metrics["val/psnr"]), None)]


if __name__ == "__main__":
    sys.exit(main())
