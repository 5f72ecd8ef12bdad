"""VideoReID: the batch-hard triplet loss against its definition, the losses and logged metrics of a
training step, ranking across two loaders, bad arguments; the CLI's fit, test (against the protocol
applied by hand), publish and load; two DDP processes fitting together and ranking exactly as one; what
`attnzoo show` draws for a re-ID network."""
from __future__ import annotations

import csv
import itertools
import json
import os
import subprocess
import sys
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import attnzoo
from attnzoo.backbones.video import embed_loader, embed_tracklets
from attnzoo.cli import AttnzooCLI, main
from attnzoo.tasks import ReIDAdam, VideoReID, show_reid
from attnzoo.tasks.reid import _frame_weights, batch_hard_triplet_loss
from attnzoo.tasks.reid_metrics import evaluate_ranking
from attnzoo.viz import attention_maps

from ..cli_helpers import ROOT, ddp_fit
from ..picture_helpers import capture_draw, capture_figures, figure_titles

TINY = {"backbone": "resnet18n", "input_size": (32, 16), "seq_len": 2}


def triplet_by_hand(features: torch.Tensor, pids: torch.Tensor, margin: float) -> torch.Tensor:
    losses = []
    for a in range(len(pids)):
        d = [torch.dist(features[a], features[j]) for j in range(len(pids))]
        positives = [d[j] for j in range(len(pids)) if j != a and pids[j] == pids[a]]
        negatives = [d[j] for j in range(len(pids)) if pids[j] != pids[a]]
        if positives and negatives:
            losses.append(F.relu(max(positives) - min(negatives) + margin))
    return torch.stack(losses).mean()


def test_batch_hard_triplet_loss_is_its_definition():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(12, 8, generator=generator)
    pids = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4])  # 4 has no positive: left out
    for margin in (0.0, 0.3, 5.0):
        torch.testing.assert_close(batch_hard_triplet_loss(features, pids, margin), triplet_by_hand(features, pids, margin))
    assert batch_hard_triplet_loss(features[:2], torch.tensor([0, 1])) == 0  # no anchor has a positive
    # Well separated identities give no loss.
    separated = torch.tensor([[0.0], [0.1], [10.0], [10.1]])
    assert batch_hard_triplet_loss(separated, torch.tensor([0, 0, 1, 1]), 0.3) == 0


def test_batch_hard_triplet_loss_takes_distances_in_float32_under_autocast():
    # Features far from the origin, as after ReLU and pooling: a half-precision Gram matrix would
    # swamp the distances between them.
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(12, 64, generator=generator) + 8
    pids = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = batch_hard_triplet_loss(features, pids, 0.3)
    torch.testing.assert_close(loss, triplet_by_hand(features, pids, 0.3))


@pytest.mark.parametrize("temporal", ["avg", "sta"])
def test_training_loss_is_ce_plus_triplet_plus_regulariser(temporal):
    torch.manual_seed(0)
    task = VideoReID(temporal=temporal, num_classes=3, regularization_weight=2.0, **TINY)
    x, pids = torch.rand(6, 2, 3, 64, 32), torch.tensor([0, 0, 1, 1, 2, 2])
    logged = {}
    task.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
    task.log_dict = lambda values, **kwargs: logged.update(values)
    torch.manual_seed(1)
    loss = task.training_step((x, pids, torch.zeros(6, dtype=torch.long)), 0)
    torch.manual_seed(1)
    out = task.model(x)
    expected = F.cross_entropy(out["logits"], pids, label_smoothing=0.1) + batch_hard_triplet_loss(out["features"], pids)
    if temporal == "sta":
        expected = expected + 2.0 * out["regularization"]
    torch.testing.assert_close(loss, expected)
    assert torch.equal(logged["train/loss"], loss)


def test_ranking_over_query_and_gallery_loaders_logs_cmc_and_map():
    task = VideoReID(num_classes=3, **TINY).eval()
    logged = {}
    task.log_dict = lambda values, **kwargs: logged.update(values)
    task._trainer = type("T", (), {"world_size": 1, "sanity_checking": False})()
    generator = torch.Generator().manual_seed(0)
    people = torch.rand(3, 1, 3, 64, 32, generator=generator)
    # Each gallery tracklet is its person's query tracklet with a little noise: ranked first by its own person.
    for index, pid in enumerate((0, 1, 2)):
        query = people[pid].expand(2, -1, -1, -1)[None]
        task.validation_step((query, torch.tensor([pid]), torch.tensor([0])), index, dataloader_idx=0)
    for pid, cam in itertools.product((0, 1, 2), (1, 2)):
        noisy = (people[pid] + 0.001 * torch.rand(1, 3, 64, 32, generator=generator)).expand(4, -1, -1, -1)[None]
        task.validation_step((noisy, torch.tensor([pid]), torch.tensor([cam])), 0, dataloader_idx=1)
    task.on_validation_epoch_end()
    assert logged["val/rank1"] == 100 and logged["val/mAP"] == 100
    assert set(logged) == {"val/rank1", "val/rank5", "val/rank10", "val/rank20", "val/mAP"}
    assert task._embedded == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_classes": 0}, "num_classes must be the number of training identities"),
        ({"num_classes": 3, "temporal": "mean"}, "unknown temporal aggregation 'mean'"),
        ({"num_classes": 3, "metric": "l1"}, "metric must be 'euclidean' or 'cosine'"),
        ({"num_classes": 3, "label_smoothing": 1.0}, r"label_smoothing must lie in \[0, 1\)"),
        ({"num_classes": 3, "warmup_steps": -1}, "warmup_steps must be a non-negative integer"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        VideoReID(**{**TINY, **kwargs})


CLI_MODEL = ["--model", "VideoReID", "--model.backbone", "resnet18n", "--model.temporal", "sta"]
CLI_DATA = ["--data", "TrackletsData", "--data.train_ids", "8", "--data.val_ids", "4", "--data.test_ids", "6",
            "--data.p", "4", "--data.k", "2"]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
         "--trainer.log_every_n_steps", "1"]


@pytest.fixture
def fitted(tmp_path_factory, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["attnzoo"])
    root = tmp_path_factory.mktemp("reid")
    AttnzooCLI(args=["fit", *CLI_MODEL, *CLI_DATA, *QUIET, "--trainer.max_epochs", "2", "--seed_everything", "0",
                     "--trainer.default_root_dir", str(root)])
    return root / "lightning_logs" / "version_0"


def test_cli_fit_test_publish_and_load(fitted, tmp_path):
    with open(fitted / "metrics.csv") as f:
        logged = list(csv.DictReader(f))
    assert {"train/ce", "train/triplet", "train/regularization", "val/mAP", "val/rank1"} <= set(logged[0])
    last = fitted / "checkpoints" / "last.ckpt"
    tested = AttnzooCLI(args=["test", "--config", str(fitted / "config.yaml"), "--ckpt_path", str(last),
                              "--trainer.logger", "false"])
    figures = {k: float(v) for k, v in tested.trainer.callback_metrics.items()}
    # Against the protocol applied by hand to the checkpoint's network on the data's own loaders.
    task = VideoReID.load_from_checkpoint(last, map_location="cpu").eval()
    data = tested.datamodule
    query, gallery = data.test_dataloader()
    with torch.no_grad():
        clips = [(embed_tracklets(task.model, x, 4), p, c) for x, p, c in query]
    # embed_loader, which the benchmark and `attnzoo show` use, embeds as the test step does.
    assert all(torch.equal(a, torch.cat(b)) for a, b in zip(embed_loader(task.model, query, 4), zip(*clips)))
    expected = evaluate_ranking(*(torch.cat(column) for column in zip(*clips)), *embed_loader(task.model, gallery, 4))
    assert figures["test/mAP"] == pytest.approx(100 * expected["mAP"], abs=1e-3)
    assert figures["test/rank1"] == pytest.approx(100 * float(expected["cmc"][0]), abs=1e-3)

    assert main(["publish", "--ckpt_path", str(last), "--output", str(tmp_path / "model"),
                 "--name", "resnet18n+sta.trial"]) == 0
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["task"] == "reid" and config["input_size"] == [3, 64, 32] and config["dataset"] == "tracklets"
    assert "test/rank1" in (tmp_path / "model" / "README.md").read_text()
    loaded = attnzoo.load(tmp_path / "model")
    x = torch.rand(2, 4, 3, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), task.model(x), rtol=0, atol=0)


def test_two_processes_fit_together_and_rank_exactly_as_one(fitted, tmp_path):
    (tmp_path / "fit").mkdir()
    rank0 = ddp_fit(tmp_path / "fit", *CLI_MODEL, *CLI_DATA, *QUIET, "--seed_everything", "0")
    assert any(k.startswith("model.backbone.") for k in rank0)
    last = fitted / "checkpoints" / "last.ckpt"
    single = AttnzooCLI(args=["test", "--config", str(fitted / "config.yaml"), "--ckpt_path", str(last),
                              "--trainer.logger", "false"]).trainer.callback_metrics
    command = [sys.executable, "-m", "attnzoo.cli", "test", "--config", str(fitted / "config.yaml"),
               "--ckpt_path", str(last), "--trainer.accelerator", "cpu", "--trainer.devices", "2",
               "--trainer.strategy", "ddp", "--trainer.default_root_dir", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "MEMBER: 2/2" in done.stderr
    with open(next(tmp_path.glob("lightning_logs/version_*/metrics.csv"))) as f:
        row = next(csv.DictReader(f))
    for name in ("test/rank1", "test/rank5", "test/mAP"):
        assert float(row[name]) == pytest.approx(float(single[name]), abs=1e-4), name


def test_init_from_a_zoo_entry_keeps_all_but_the_classifier():
    task = VideoReID(temporal="sta", num_classes=5, input_size=(64, 32), init_from="resnet18n+sta.tracklets", **{
        k: v for k, v in TINY.items() if k not in ("input_size", "seq_len")})
    entry = attnzoo.load("resnet18n+sta.tracklets").state_dict()
    own = task.model.state_dict()
    assert own["classifier.weight"].shape == (5, entry["classifier.weight"].shape[1])
    assert all(torch.equal(own[k], v) for k, v in entry.items() if not k.startswith("classifier."))
    with pytest.raises(ValueError, match=r"init_from='resnet18n\+sta.tracklets' is a resnet18n\+sta network, not resnet18n\+avg"):
        VideoReID(temporal="avg", num_classes=5, init_from="resnet18n+sta.tracklets", **TINY)


def test_a_short_fit_lowers_the_loss():
    import lightning.pytorch as pl

    from attnzoo.data import TrackletsData

    class Losses(pl.Callback):
        def __init__(self) -> None:
            self.values: list[float] = []

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self.values.append(float(outputs["loss"]))

    pl.seed_everything(0)
    losses = Losses()
    data = TrackletsData(train_ids=8, val_ids=4, test_ids=4, p=4, k=2)
    task = VideoReID(backbone="resnet18n", temporal="soft", num_classes=8, input_size=(64, 32), optimizer=partial(ReIDAdam, lr=1e-3))
    trainer = pl.Trainer(max_epochs=10, limit_val_batches=0, callbacks=[losses], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(task, datamodule=data)
    assert len(losses.values) == 20  # 8 identities in batches of 4 x 2 tracklets: 2 steps an epoch
    assert sum(losses.values[-4:]) < 0.8 * sum(losses.values[:4])


def test_sanity_checking_never_ranks_and_each_evaluation_starts_afresh():
    task = VideoReID(num_classes=3, **TINY).eval()
    task._trainer = type("T", (), {"world_size": 1, "sanity_checking": True})()
    x = torch.rand(1, 2, 3, 64, 32)
    task.validation_step((x, torch.tensor([0]), torch.tensor([0])), 0, dataloader_idx=0)
    task.validation_step((x, torch.tensor([1]), torch.tensor([0])), 0, dataloader_idx=1)  # no true match
    task.on_validation_epoch_end()  # would raise "no query has a true match" if it ranked
    assert task._embedded == {}
    task.validation_step((x, torch.tensor([0]), torch.tensor([0])), 0, dataloader_idx=0)
    task.on_test_epoch_start()  # an interrupted validation leaves nothing for the test
    assert task._embedded == {}


def test_more_checks_of_the_arguments():
    with pytest.raises(ValueError, match="hard attention keeps k=5 frames, more than the seq_len=2"):
        VideoReID(temporal="hard", num_classes=3, temporal_kwargs={"k": 5}, **TINY)
    with pytest.raises(ValueError, match=r"has last_stride 1, this task 2"):
        VideoReID(temporal="sta", num_classes=5, last_stride=2, init_from="resnet18n+sta.tracklets",
                  backbone="resnet18n")
    from attnzoo.data import TrackletsData

    with pytest.raises(ValueError, match="a batch of p \\* k = 1 tracklet cannot train"):
        TrackletsData(p=1, k=1)


@pytest.mark.parametrize("temporal", ["avg", "max", "soft", "hard", "sta"])
def test_a_frames_weight_is_its_share_in_the_temporal_mechanism(temporal):
    torch.manual_seed(0)
    model = attnzoo.create_model(f"resnet18n+{temporal}").eval()
    _, maps = attention_maps(model, torch.rand(1, 4, 3, 64, 32))
    weights = _frame_weights(maps, temporal, 4)
    if temporal == "max":
        assert weights is None
        return
    if temporal == "sta":  # each part's scores over the frames, averaged over the 4 parts
        expected = maps["pool"][0].mean(-1)
    elif temporal == "hard":  # the selected frame takes it all
        expected = maps["pool"][0] / maps["pool"][0].sum()
    else:
        expected = maps["pool"][0] if temporal == "soft" else torch.full((4,), 0.25)
    torch.testing.assert_close(torch.tensor(weights), expected.float())
    assert sum(weights) == pytest.approx(1)


def test_show_command_draws_a_reid_network(tmp_path, capsys):
    torch.manual_seed(0)
    folder = attnzoo.save_pretrained(attnzoo.create_model("resnet18n+soft", input_size=(64, 32)), tmp_path / "net")
    output = tmp_path / "ranks.png"
    assert main(["show", str(folder), "--output", str(output), "--count", "2"]) == 0
    assert f"wrote {output}" in capsys.readouterr().out
    # Two rows of the query's 4 frames and 5 gallery tracklets, 0.75 x 1.6 inches each, at 120 dpi.
    assert Image.open(output).size == (round((0.75 * 9 + 0.5) * 120), round(1.6 * 2 * 120))
    assert main(["show", str(folder), "--output", str(output), "--level", "25"]) == 2
    assert "--level is for restoration models" in capsys.readouterr().err
    with pytest.raises(ValueError, match="is a classification model; show_reid draws video re-ID networks"):
        show_reid(attnzoo.create_model("resnet20"), output)


def test_show_reid_draws_stas_weights_per_part_below_the_rankings(tmp_path, monkeypatch):
    drawn = capture_draw(monkeypatch)
    figures = capture_figures(monkeypatch)
    model = attnzoo.create_model("resnet18n+sta", input_size=(64, 32))
    path = show_reid(model, tmp_path / "ranks.png", count=2, top=3)
    # The rankings (the query's 4 frames, 3 gallery tracklets) above the query clips with their part weights.
    assert Image.open(path).size == (round((0.75 * 7 + 0.5) * 120), round((1.6 * 2 + 1.5 * 2 + 0.4) * 120))
    rankings, items = figures[-1].subfigs
    assert figure_titles(rankings)[0].startswith("query ") and figure_titles(rankings)[4].startswith("#1: ")
    assert figure_titles(items)[-1] == "pool · sta: the weight of each item, per part (top to bottom)"
    assert list(drawn["maps"]) == ["pool"] and drawn["items"].shape == (2, 4, 3, 64, 32)
    # Each frame's bands are labelled with its parts' scores, which sum to 1 over the frames.
    first = drawn["maps"]["pool"][0]
    assert first.shape == (4, 4) and torch.allclose(first.sum(0), torch.ones(4))
    labels = [float(text.get_text()) for text in items.axes[0].texts]
    assert labels == pytest.approx(first[0].tolist(), abs=0.005)
