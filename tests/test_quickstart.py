"""The README's main job (examples/quickstart.py), shortened: a few training steps, 20 detection scenes."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_runs_every_task(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--out", str(out), "--short", "--",
               "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.enable_progress_bar", "false"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = [line for line in done.stdout.splitlines() if line.startswith("| test/")]
    assert len(table) == 2
    for line in table:
        _, metric, trained, loaded, zoo, _ = line.split("|")
        assert trained == loaded  # the folder loaded back by path scores what the checkpoint scored
        assert zoo.strip().endswith("%")
    assert {p.name for p in (out / "resnet20-cbam.digits").iterdir()} == {"config.json", "model.safetensors", "README.md"}
    for picture in ("attention_maps", "detection", "denoising", "deartifacting", "reid"):
        assert Image.open(out / f"{picture}.png").format == "PNG", picture
    # The last table: every task, the zoo's entries scoring here what their cards say (the detector on
    # the first test scenes only), the fine-tuned denoiser on the user's photo.
    rows = {tuple(c.strip() for c in line.split("|")[1:4]): line.split("|")[4:6]
            for line in done.stdout.split("== 10.")[1].splitlines() if line.startswith("| ") and "---" not in line}
    tasks = {task for task, _, _ in rows}
    assert tasks == {"task", "classification", "detection", "restoration", "video re-ID"}
    for (task, entry, metric), (here, card) in rows.items():
        if task in ("restoration", "video re-ID") and "fine-tuned" not in entry:
            assert float(here) == float(card), (entry, metric)
    assert float(rows[("restoration", "rir-se.gray-s25, fine-tuned", "PSNR dB (your val photo)")][0]) > 25
