"""The ``attnzoo`` command: the model zoo and publishing.

    attnzoo zoo list [PATTERN]         the catalog: name, task, parameters, metrics, source, cached or not
    attnzoo zoo info NAME              one entry in full
    attnzoo publish DIRECTORY REPO_ID  a saved model folder to the Hub, or with --mirror ROOT into a mirror
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from huggingface_hub import try_to_load_from_cache

__all__ = ["main"]


def _cached(entry) -> bool:
    return isinstance(try_to_load_from_cache(entry.repo, entry.filename, revision=entry.revision), str)


def _zoo_list(pattern: str) -> None:
    from attnzoo.backbones import create_model
    from attnzoo.zoo.catalog import catalog, list_pretrained

    rows = ["| name | task | params (M) | metrics | source | cached |", "|---|---|---:|---|---|---|"]
    for name in list_pretrained(pattern):
        entry = catalog()[name]
        params = sum(p.numel() for p in create_model(entry.spec).parameters()) / 1e6
        metrics = ", ".join(f"{k} {v}" for k, v in entry.metrics.items())
        default = " (default)" if entry.default else ""
        rows.append(
            f"| {name}{default} | {entry.task} | {params:.2f} | {metrics} | {entry.repo}@{entry.revision} "
            f"| {'yes' if _cached(entry) else 'no'} |"
        )
    print("\n".join(rows))


def _zoo_info(name: str) -> None:
    import dataclasses

    from attnzoo.zoo.catalog import resolve

    entry = resolve(name)
    info = {k: v for k, v in dataclasses.asdict(entry).items() if v not in (None, {})}
    info.update(spec=dataclasses.asdict(entry.spec), cached=_cached(entry))
    print(json.dumps(info, indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="attnzoo", description="attnzoo's model zoo and publishing.")
    commands = parser.add_subparsers(dest="command", required=True)
    zoo = commands.add_parser("zoo", help="the catalog of pretrained models").add_subparsers(dest="zoo", required=True)
    listing = zoo.add_parser("list", help="every zoo entry")
    listing.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'resnet50-*'")
    info = zoo.add_parser("info", help="one zoo entry")
    info.add_argument("name")
    publish = commands.add_parser("publish", help="publish a folder written by attnzoo.save_pretrained")
    publish.add_argument("directory")
    publish.add_argument("repo_id", help="org/name")
    publish.add_argument("--revision", default="main")
    publish.add_argument("--mirror", help="commit into the git mirror ROOT/models/<repo_id> instead of uploading")
    publish.add_argument("--private", action="store_true")
    publish.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")
    args = parser.parse_args(argv)
    try:
        if args.command == "zoo" and args.zoo == "list":
            _zoo_list(args.pattern)
        elif args.command == "zoo":
            _zoo_info(args.name)
        else:
            from attnzoo.zoo import publish as publish_folder

            commit = publish_folder(
                args.directory, args.repo_id, revision=args.revision, token=args.token,
                private=args.private, mirror=args.mirror,
            )
            print(f"published {args.directory} to {args.repo_id}@{args.revision}: commit {commit}")
    except ValueError as err:
        print(f"attnzoo: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
