"""The ``attnzoo`` command: Lightning's CLI for the tasks, plus the zoo's tools.

    attnzoo fit|validate|test|predict ...  LightningCLI: --config, --print_config, --model ImageClassifier,
                                           --data DigitsData, --trainer.*, --ckpt_path
    attnzoo zoo list [PATTERN]             the catalog: name, task, parameters, metrics, source, cached or not
    attnzoo zoo info NAME                  one entry in full
    attnzoo publish ...                    a trained checkpoint or a saved folder to a folder, the Hub or a mirror
    attnzoo show MODEL --output PNG        a picture of what a model does and where it attends: a classifier's
                                           attention, each mechanism drawn as its paper did, on test digits
                                           or photos; a detector's boxes and backbone maps on ShapesData
                                           test images or on --image FILE ... (--score_thresh); a
                                           restoration network's degraded, restored and clean images and
                                           maps on the benchmark's test photos or on --image FILE ...
                                           (--level); a re-ID network's rankings; --random: untrained
"""
from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.loggers import CSVLogger

# Imported so that LightningCLI finds the tasks and data modules by their short names.
import attnzoo.data  # noqa: F401
import attnzoo.tasks  # noqa: F401

__all__ = ["AttnzooCLI", "main", "zoo_table"]

_TOOLS = ("zoo", "publish", "show")
_DESCRIPTION = (
    "attnzoo: train, test and publish attention-configured networks.\n"
    "Lightning's subcommands are below; the zoo's tools are `attnzoo zoo list|info`, "
    "`attnzoo publish` and `attnzoo show` (each with --help)."
)


def _size(height: int, width: int) -> tuple[int, int]:
    return height, width


def _without_config_files(args: Sequence[str]) -> list[str]:
    """The command line less its config files: ``--config FILE``, ``--config=FILE`` (or a prefix of
    ``--config`` that argparse takes for it, such as ``--conf``), ``-c FILE``, ``-cFILE``, ``-c=FILE``."""
    kept, skip = [], False
    for arg in args:
        option = arg.split("=", 1)[0]
        if skip:
            skip = False
        elif arg == "-c" or (len(option) >= 4 and "--config".startswith(option)):
            skip = "=" not in arg
        elif not (arg.startswith("-c") and not arg.startswith("--")):
            kept.append(arg)
    return kept


class AttnzooCLI(LightningCLI):
    """LightningCLI with the data module's classes linked into the task.

    ``data.num_classes`` and ``data.labels`` become the model's ``num_classes``
    and ``labels``; ``data.category_ids`` (detection: the categories' original
    ids) becomes the model's ``category_ids``, and a re-ID data module's
    ``seq_len`` and frame ``height`` and ``width`` the model's ``seq_len`` and
    ``input_size``, where both have them (jsonargparse skips a link whose
    source attribute or target parameter is absent). A task
    that names a ``checkpoint_monitor`` gets a ModelCheckpoint keeping the best
    epoch by that metric and the last one, unless the trainer's callbacks
    already hold a ModelCheckpoint or checkpointing is off. Without
    ``--trainer.logger``, logs are CSV files under
    ``<default_root_dir>/lightning_logs/`` (the current directory when
    ``--trainer.default_root_dir`` is not given), checkpoints beside them.
    With ``--ckpt_path``, the model's arguments come from the checkpoint's
    hyperparameters over the config files', and options given on the command
    line (``test --ckpt_path X --model.label_smoothing 0``) over both.
    """

    def __init__(self, args: Sequence[str] | None = None, run: bool = True) -> None:
        super().__init__(
            args=args,
            run=run,
            auto_configure_optimizers=False,  # the tasks take their optimiser and scheduler as arguments
            parser_kwargs={"prog": "attnzoo", "description": _DESCRIPTION},
            save_config_kwargs={"overwrite": True},  # a rerun into the same folder replaces its config.yaml
        )

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.labels", "model.init_args.labels", apply_on="instantiate")
        parser.link_arguments("data.category_ids", "model.init_args.category_ids", apply_on="instantiate")
        parser.link_arguments("data.seq_len", "model.init_args.seq_len", apply_on="instantiate")
        parser.link_arguments(
            ("data.height", "data.width"), "model.init_args.input_size", compute_fn=_size, apply_on="instantiate"
        )

    def _parse_ckpt_path(self) -> None:
        given = self.config
        super()._parse_ckpt_path()
        args = getattr(self.parser, "args", None)
        if self.config is given or not isinstance(args, list):
            return
        # Lightning lays the checkpoint's hyperparameters over everything given, the command line's flags
        # included (2.6; Lightning-AI/pytorch-lightning#21455, an open pull request, would put config files
        # over the checkpoint instead), so `test --ckpt_path X --model.label_smoothing 0` silently got the
        # training run's value back. Here the checkpoint's stand over config files, which may name the recipe a
        # run started from rather than what it trained with, and the flags are parsed again on top. Only the
        # model's part of that second parse is kept, as the checkpoint touched nothing else (a `+=` flag there
        # would be applied twice).
        model = f"{self.config.subcommand}.model"
        again = self.parser.parse_args(_without_config_files(args), namespace=self.config)
        self.config[model] = again[model]

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._get(self.config_init, "trainer", default={})
        if config.get("logger") in (None, True):
            # Lightning's own default would be TensorBoard where it is installed; attnzoo's runs are CSV
            # everywhere, under default_root_dir as Lightning puts its default logger.
            kwargs["logger"] = CSVLogger(save_dir=config.get("default_root_dir") or os.getcwd())
        callbacks = list(config.get("callbacks") or [])
        monitor = getattr(self.model, "checkpoint_monitor", None)
        if (
            monitor is not None
            and config.get("enable_checkpointing") is not False
            and not any(isinstance(c, ModelCheckpoint) for c in callbacks)
        ):
            metric, mode = monitor
            best = ModelCheckpoint(monitor=metric, mode=mode, filename="best-{epoch:03d}")
            # Since Lightning 2.6, save_last=True writes last.ckpt only beside a new best checkpoint; this
            # one is the state after every training epoch, validated or not.
            last = ModelCheckpoint(filename="last", save_on_train_epoch_end=True, enable_version_counter=False)
            kwargs["callbacks"] = [*callbacks, best, last]
        return super().instantiate_trainer(**kwargs)


def _network_kwargs(entry) -> dict[str, Any] | None:
    """What builds the entry's network besides its name (class count, FPN width, a restoration network's
    channels and sizes, a re-ID network's last stride and frames), where known without a download."""
    if entry.folder is not None and (entry.folder / "config.json").is_file():
        config = json.loads((entry.folder / "config.json").read_text())
        if config["task"] == "restoration":
            return {"in_channels": config["in_chans"], **config["network_kwargs"]}
        if config["task"] == "reid":
            return {k: config[k] for k in ("num_classes", "last_stride", "seq_len")}
        return {k: config[k] for k in ("num_classes", "fpn_channels") if k in config}
    if entry.timm is not None:
        from timm.models import get_pretrained_cfg

        return {"num_classes": get_pretrained_cfg(entry.timm).num_classes}
    if entry.torchvision is not None:
        return {"num_classes": len(entry.torchvision_weights.meta["categories"])}
    return None


def zoo_table(pattern: str = "*", cached: bool = True) -> str:
    """The catalog as a Markdown table (``attnzoo zoo list``); ``cached`` adds whether the weights are here."""
    from attnzoo.backbones import create_model
    from attnzoo.zoo.catalog import catalog, list_pretrained
    from attnzoo.zoo.hub import is_cached

    rows = [
        "| name | task | params (M) | metrics | source |" + (" cached |" if cached else ""),
        "|---|---|---:|---|---|" + ("---|" if cached else ""),
    ]
    for name in list_pretrained(pattern):
        entry = catalog()[name]
        kwargs = _network_kwargs(entry)
        params = "-"
        if kwargs is not None:
            params = f"{sum(p.numel() for p in create_model(entry.spec, **kwargs).parameters()) / 1e6:.2f}"
        metrics = ", ".join(f"{k} {v}" for k, v in entry.metrics.items())
        default = " (default)" if entry.default else ""
        row = f"| {name}{default} | {entry.task} | {params} | {metrics} | {entry.location} |"
        rows.append(row + (f" {'yes' if is_cached(entry) else 'no'} |" if cached else ""))
    return "\n".join(rows)


def _zoo_info(name: str) -> None:
    import dataclasses

    from attnzoo.zoo.catalog import resolve
    from attnzoo.zoo.hub import is_cached

    entry = resolve(name)
    info = {k: v for k, v in dataclasses.asdict(entry).items() if v not in (None, {})}
    info.update(spec=dataclasses.asdict(entry.spec), cached=is_cached(entry))
    print(json.dumps(info, indent=2))


def _publish(args: argparse.Namespace) -> None:
    import tempfile

    from attnzoo.zoo import publish
    from attnzoo.zoo.export import export_checkpoint

    if (args.ckpt_path is None) == (args.directory is None):
        raise ValueError("publish needs exactly one of --ckpt_path (a Lightning checkpoint) or --directory (a saved folder)")
    if args.directory is not None:
        given = [f"--{k}" for k in ("output", "recipe", "name") if getattr(args, k) is not None]
        given += ["--no_test"] if args.no_test else []
        if given:
            raise ValueError(f"{', '.join(given)} go with --ckpt_path; a saved folder already has its config and card")
        if args.repo_id is None:
            raise ValueError("publishing --directory needs --repo_id (to the Hub, or into --mirror)")
    elif args.repo_id is None and args.output is None:
        raise ValueError("publish needs --repo_id (to the Hub or --mirror), --output (a folder), or both")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.directory) if args.directory else Path(args.output or Path(scratch) / "model")
        if args.ckpt_path is not None:
            metrics = export_checkpoint(args.ckpt_path, folder, recipe=args.recipe, name=args.name, test=not args.no_test)
            print(f"wrote {folder} ({', '.join(f'{k} {v:.4f}' for k, v in metrics.items())})")
        if args.repo_id is not None:
            commit = publish(
                folder, args.repo_id, revision=args.revision, token=args.token, private=args.private, mirror=args.mirror
            )
            print(f"published {folder} to {args.repo_id}@{args.revision}: commit {commit}")


def _show_model(name: str, random: bool) -> Any:
    """What `attnzoo show` draws: ``name`` loaded (a zoo name, a model folder, a Hub repo id), or, with
    ``random`` or for a model name with no weights in the zoo, built with random weights."""
    from attnzoo.backbones import create_model
    from attnzoo.zoo import load
    from attnzoo.zoo.catalog import is_zoo_name

    zoo = is_zoo_name(name)
    if random or not (zoo or Path(name).is_dir() or "/" in name):
        model = create_model(name)
        print(f"{name}: random weights, not trained")
        return model
    try:
        return load(name)
    except ValueError as err:
        if not zoo:
            raise
        raise ValueError(f"{err}. Or draw the network untrained: attnzoo show {name} --random") from None


def _show(args: argparse.Namespace) -> None:
    from attnzoo.tasks import SHOWS, show

    model = _show_model(args.model, args.random)
    task = model.pretrained_cfg.get("task", "classification")
    # A JPEG quality must be an int; a sigma is the same either way.
    level = int(args.level) if args.level is not None and args.level.is_integer() else args.level
    options = {"images": args.images, "score_thresh": args.score_thresh, "level": level}
    given = {keyword: value for keyword, value in options.items() if value is not None}
    # A task-specific option is for the tasks whose picture function takes it.
    takes = {t: set(inspect.signature(function).parameters) for t, (function, _) in SHOWS.items()}
    for keyword in given:
        if keyword not in takes[task]:
            whom = " and ".join(w for t, (_, w) in SHOWS.items() if keyword in takes[t])
            flag = "--image" if keyword == "images" else f"--{keyword}"
            raise ValueError(f"{flag} is for {whom}; {args.model!r} is a {task} model")
    print(f"wrote {show(model, args.output, count=args.count, **given)}")


def _tools(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="attnzoo", description="attnzoo's model zoo tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    zoo = commands.add_parser("zoo", help="the catalog of pretrained models").add_subparsers(dest="zoo", required=True)
    listing = zoo.add_parser("list", help="every zoo entry")
    listing.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'resnet50-*'")
    info = zoo.add_parser("info", help="one zoo entry")
    info.add_argument("name")

    publish = commands.add_parser(
        "publish",
        help="a trained checkpoint (or a saved folder) to a model folder, the Hub or a mirror",
        description="Turn a Lightning checkpoint into a model folder (config.json, model.safetensors, README.md "
        "with its metrics and recipe) and/or publish a folder to the Hub or a git mirror.",
    )
    publish.add_argument("--ckpt_path", help="a checkpoint written by `attnzoo fit`")
    publish.add_argument("--directory", help="a folder written by attnzoo.save_pretrained, instead of --ckpt_path")
    publish.add_argument("--repo_id", help="org/name on the Hub (or in --mirror)")
    publish.add_argument("--output", help="write the model folder here (and keep it)")
    publish.add_argument("--name", help="the model's name in its config and card, e.g. resnet20-cbam.digits")
    publish.add_argument("--recipe", help="the YAML recipe for the card (default: the run's config.yaml)")
    publish.add_argument("--no_test", action="store_true", help="skip evaluating the checkpoint on the test split")
    publish.add_argument("--revision", default="main")
    publish.add_argument("--mirror", help="commit into the git mirror ROOT/models/<repo_id> instead of uploading")
    publish.add_argument("--private", action="store_true")
    publish.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")

    show = commands.add_parser(
        "show",
        help="a picture of what a model does and where it attends",
        description="Draw what a model does and where it attends, each attention mechanism in the form its "
        "paper used (docs/attention.md, Pictures). A classifier: its predictions and attention on test digits "
        "(a digit-sized or grey network) or on scikit-image photos: maps on the images, channel gates, routing "
        "weights and gates compared across classes (or photos), a selective kernel's attention against the "
        "object's size. A detector: its boxes (class and score) on each image, then its backbone's maps "
        "laid over it; on ShapesData's test images, or on your own with --image. A restoration network: "
        "the degraded image, its restoration and the clean image (with their PSNR), then its maps laid over "
        "the degraded image; on the benchmark's test photos degraded as it degrades them, or on your own "
        "clean images with --image, degraded as the network was trained (at --level for a blind network). "
        "A video re-ID network: query tracklets of TrackletsData's test split with each frame's weight, then "
        "their best-ranked gallery tracklets, framed green for the same person and red otherwise; for STA, "
        "the query frames again below with their weight per horizontal part.",
    )
    show.add_argument(
        "model", help="a zoo name, a model folder, a Hub repo id, or a model name (drawn with random weights)"
    )
    show.add_argument("--random", action="store_true", help="draw the network of that name untrained, random weights")
    show.add_argument("--output", default="attention_maps.png", help="PNG file to write")
    show.add_argument(
        "--count", type=int, default=4,
        help="test digits, ShapesData test images or re-ID queries to show (1-32); classifiers shown photos and "
        "restoration: photos (1-4)",
    )
    show.add_argument(
        "--image", dest="images", nargs="+", metavar="FILE",
        help="detectors: image files (PNG, JPEG ...) to draw; restoration: clean image files to degrade and restore",
    )
    show.add_argument("--score_thresh", type=float, help="detectors: the least score of a box drawn (default 0.3)")
    show.add_argument(
        "--level", type=float,
        help="restoration, blind networks: the sigma or JPEG quality to degrade with (default: 25 or 10)",
    )

    args = parser.parse_args(argv)
    try:
        if args.command == "zoo" and args.zoo == "list":
            print(zoo_table(args.pattern))
        elif args.command == "zoo":
            _zoo_info(args.name)
        elif args.command == "publish":
            _publish(args)
        else:
            _show(args)
    except ValueError as err:
        print(f"attnzoo: error: {err}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in _TOOLS:
        return _tools(args)
    try:
        AttnzooCLI(args=None if argv is None else args)  # None: LightningCLI reads sys.argv itself
    except ValueError as err:  # attnzoo's bad-input errors (names, folders, class counts) say it all
        print(f"attnzoo: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
