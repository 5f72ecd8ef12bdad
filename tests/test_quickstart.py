"""The README's main job (examples/quickstart.py), shortened to a few training steps."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_trains_tests_saves_loads_and_draws(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, str(ROOT / "examples" / "quickstart.py"), "--out", str(out), "--",
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
    assert Image.open(out / "attention_maps.png").format == "PNG"
