"""Model cards: the README.md of a published model, a Hub card with YAML front matter."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from attnzoo.attention import attention_info, list_attentions

__all__ = ["render_card"]

_TASK_TYPES = {
    "classification": "image-classification",
    "detection": "object-detection",
    "restoration": "image-to-image",
    "reid": "image-feature-extraction",
}


def _test_sizes(config: Mapping[str, Any]) -> str:
    """The evaluation sizes, where they differ from the training ones (config.json holds both resolved)."""
    if config.get("test_min_size") is None:
        return ""
    return f" for training and min_size {config['test_min_size']} / max_size {config['test_max_size']} for evaluation"


def _summary(config: Mapping[str, Any], attention: str | None) -> str:
    """One sentence: what the network is and what it takes."""
    with_attention = f" with `{attention}` attention" if attention else ""
    if config["task"] == "detection":
        spec = config["spec"]
        return (
            f"An attnzoo `{spec['detector']}` detector (torchvision's) on a `{spec['backbone']['arch']}` backbone"
            f"{with_attention}, {config['num_classes'] - 1} object classes, images resized to "
            f"min_size {config['min_size']} / max_size {config['max_size']}{_test_sizes(config)}."
        )
    if config["task"] == "restoration":
        colour = "grey (1 channel)" if config["in_chans"] == 1 else "colour (3 channels)"
        degradation = config.get("degradation")
        if degradation is None:
            undoes = "untrained"
        elif degradation["kind"] == "gaussian":
            undoes = f"removes additive white Gaussian noise of sigma {degradation['sigma']} (0-255 scale)"
        else:
            undoes = f"removes JPEG artefacts of quality {degradation['quality']}"
        return (
            f"An attnzoo `{config['spec']['body']}` restoration network{with_attention}, {colour}, any image "
            f"size: {undoes}. Images (B, C, H, W) in [0, 1] in, restored images out."
        )
    if config["task"] == "reid":
        spec = config["spec"]
        c, h, w = config["input_size"]
        return (
            f"An attnzoo video re-ID network: a `{spec['backbone']['arch']}` frame backbone{with_attention}, "
            f"`{spec['temporal']}` temporal aggregation and a BNNeck; tracklets (B, T, {c}, {h}, {w}) in, "
            f"{config['embedding_dim']}-dimensional embeddings out (trained with T = {config['seq_len']})."
        )
    size = "x".join(map(str, config["input_size"]))
    return (
        f"An attnzoo `{config['spec']['arch']}` network{with_attention} for {config['task']}, "
        f"{config['num_classes']} classes, input {size}."
    )


# A restoration card's comparison table: (column title, metric prefix), each column shown where the metrics have it.
_RESTORATION_COLUMNS = (("degraded input", "test/input_"), ("BM3D", "bm3d/"), ("this model", "test/"))


def _restoration_table(metrics: Mapping[str, float]) -> list[str]:
    """PSNR / SSIM per test image (and their mean) of the degraded input, BM3D and the model, side by side."""
    names = [key.removeprefix("test/psnr/") for key in metrics if key.startswith("test/psnr/")]
    columns = [(title, prefix) for title, prefix in _RESTORATION_COLUMNS if f"{prefix}psnr" in metrics]
    if len(columns) < 2:
        return []
    lines = ["", "## Beside the baselines", "", "PSNR (dB) / SSIM on the test images, each scored the same way.", ""]
    lines += ["| image | " + " | ".join(title for title, _ in columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, suffix in [*((n, f"/{n}") for n in names), ("mean", "")]:
        cells = [
            f"{metrics[f'{p}psnr{suffix}']:.2f} / {metrics[f'{p}ssim{suffix}']:.3f}"
            if f"{p}psnr{suffix}" in metrics and f"{p}ssim{suffix}" in metrics
            else "-"
            for _, p in columns
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def render_card(
    config: Mapping[str, Any], metrics: Mapping[str, float] | None, recipe: str | None, training: str | None = None
) -> ModelCard:
    """A Hub model card for the model described by ``config`` (see :func:`attnzoo.save_pretrained`)."""
    spec = config["spec"]
    name, attention = config["name"], spec.get("backbone", spec).get("attention")
    task_type = _TASK_TYPES.get(config["task"], config["task"])
    dataset = config.get("dataset") or "custom"
    results = [
        EvalResult(
            task_type=task_type,
            dataset_type=dataset,
            dataset_name=dataset,
            metric_type=metric,
            metric_name=metric,
            metric_value=float(value),
        )
        for metric, value in (metrics or {}).items()
    ]
    data = ModelCardData(
        library_name="attnzoo",
        license=config.get("license", "apache-2.0"),
        tags=["attnzoo", task_type, *([f"attention:{attention}"] if attention else [])],
        datasets=[dataset] if config.get("dataset") else None,
        pipeline_tag=task_type if task_type in _TASK_TYPES.values() else None,
        model_name=name,
        eval_results=results or None,
    )
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        f"# {name}",
        "",
        _summary(config, attention),
        "",
        "## How to load",
        "",
        "```python",
        "import attnzoo",
        "",
        'model = attnzoo.load("ORG/NAME")  # this repo\'s id, or a local folder holding these files',
        "```",
    ]
    if metrics:
        lines += ["", "## Metrics", "", "| metric | value |", "|---|---:|"]
        lines += [f"| {metric} | {float(value):.4g} |" for metric, value in metrics.items()]
        if config["task"] == "restoration":
            lines += _restoration_table(metrics)
    if recipe or training:
        lines += ["", "## Recipe"]
    if training:
        # A recipe run in stages (its header lists them) resumes from the previous stage's weights:
        # the checkpoint knows only its own run.
        lines += ["", f"Trained for {training}: the run that wrote these weights"
                      " (its last stage, where the recipe has several)."]
    if recipe:
        lines += ["", "```yaml", recipe.strip(), "```"]
    # A re-ID network's temporal mechanism (sta, soft, hard) has its paper too; avg and max are baselines.
    temporal = spec.get("temporal") if config["task"] == "reid" else None
    mechanisms = [m for m in (attention, temporal) if m and m in list_attentions()]
    if mechanisms:
        lines += ["", "## Papers" if len(mechanisms) > 1 else "## Paper", ""]
        papers = [f"{info.title} ({info.year}), {info.paper_url}" for info in map(attention_info, mechanisms)]
        lines += papers if len(papers) == 1 else [f"- {paper}" for paper in papers]
    return ModelCard("\n".join(lines) + "\n")
