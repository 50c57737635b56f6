"""Command line: ``python -m bench {list,run,all,report,export}`` (also ``hardbench``)."""
from __future__ import annotations

import argparse
import csv
import logging
import sys
import warnings
from pathlib import Path

from . import registry
from .data import DatasetNotFound, load_dataset
from .engine import Engine
from .errors import UnknownName
from .leaderboard import methods_table, write_leaderboards
from .recipes import RECIPES, recipe_for
from .store import Store, atomic_write
from .tracks import TRACKS, select_tracks
from .train import resolve_device

# What `bench all` runs on the embedded default dataset. Track options are read by the tracks.
PROFILES = {
    "smoke": {"seeds": 2, "epochs": 8, "detection": {"types": ["label-uniform"], "rates": [0.1]}},
    "default": {"seeds": 3, "epochs": None, "detection": {"types": ["label-uniform"], "rates": [0.1]}},
    "full": {"seeds": 5, "epochs": None, "detection": {"types": ["label-uniform"], "rates": [0.05, 0.1, 0.2]}},
}
DEFAULT_DATASET = "digits"


class UsageError(Exception):
    """Bad input from the user: reported in one line, exit status 2."""


def _common(parser, results=True, leaderboards=False, plugin=True):
    if results:
        parser.add_argument("--results", default="results", help="results folder (default: results/)")
    if leaderboards:
        parser.add_argument("--leaderboards", default="leaderboards", help="leaderboard folder (default: leaderboards/)")
    if plugin:
        parser.add_argument("--plugin", action="append", default=[], metavar="MOD",
                            help="import MOD to register more methods (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hardbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list registered methods")
    p.add_argument("pattern", nargs="?", default="*", help="fnmatch pattern, e.g. 'dyn*'")
    p.add_argument("--details", action="store_true", help="family, orientation, needs and citation")
    p.add_argument("--markdown", action="store_true", help="print a markdown table (with --details)")
    _common(p, results=False)

    p = sub.add_parser("run", help="run methods through tracks on one dataset")
    p.add_argument("--dataset", default=DEFAULT_DATASET, help=f"dataset name (default: {DEFAULT_DATASET})")
    p.add_argument("--methods", default="*", help="comma-separated names or fnmatch patterns (default: all)")
    p.add_argument("--tracks", default="detection", help=f"comma-separated tracks or 'all' ({', '.join(TRACKS)})")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds, 0..N-1 (default: 3)")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--model", help="override the recipe's model (mlp, cnn, resnet18)")
    p.add_argument("--recipe", help=f"a named recipe instead of the dataset's default ({', '.join(RECIPES)})")
    p.add_argument("--subset", type=int, help="keep a stratified subset of this many train samples")
    p.add_argument("--rates", help="detection rates, comma-separated (default 0.1)")
    p.add_argument("--pool-size", type=int, help="keep a stratified random subset of this many pool samples "
                   "(split/pathways: of train+test merged; resampling: of the train split)")
    p.add_argument("--option", action="append", default=[], metavar="TRACK.KEY=VALUE",
                   help="a track setting, e.g. pathways.seeds=10 or pathways.ratios=0,0.25,1 (repeatable)")
    p.add_argument("--data-root", default="data", help="torchvision datasets folder (default: data/)")
    p.add_argument("--download", action="store_true", help="allow torchvision to download the dataset")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--no-report", action="store_true", help="do not regenerate the leaderboards afterwards")
    _common(p, leaderboards=True)

    p = sub.add_parser("all", help="every method through every track on the embedded default dataset")
    p.add_argument("--profile", default="default", choices=list(PROFILES))
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    _common(p, leaderboards=True)

    p = sub.add_parser("report", help="regenerate the leaderboards from stored results")
    _common(p, leaderboards=True, plugin=False)

    p = sub.add_parser("export", help="stored results as a tidy CSV")
    p.add_argument("--out", default="-", help="CSV file (default: standard output)")
    _common(p, plugin=False)
    return parser


def cmd_list(args) -> int:
    names = registry.list_methods(args.pattern)
    print(methods_table(names, "github" if args.markdown else "simple") if args.details else "\n".join(names))
    return 0


def _engine(args, dataset_name, seeds, epochs=None, **overrides) -> Engine:
    methods = registry.select_methods(getattr(args, "methods", "*"))
    dataset = load_dataset(dataset_name, getattr(args, "data_root", "data"), getattr(args, "download", False),
                           getattr(args, "subset", None))
    recipe = recipe_for(dataset_name, getattr(args, "recipe", None), epochs=epochs, model=getattr(args, "model", None))
    if getattr(args, "model", None):  # the recipe's model options belong to its own model
        from dataclasses import replace
        recipe = replace(recipe, model_kwargs={})
    return Engine(dataset, recipe, methods, list(range(seeds)), resolve_device(args.device), Store(args.results),
                  options=overrides, quiet=args.quiet)


def _execute(engine: Engine, tracks, args) -> int:
    for track in tracks:
        track.run(engine)
    if not getattr(args, "no_report", False):
        for path in write_leaderboards(engine.store, args.leaderboards):
            print(f"wrote {path}", file=sys.stderr)
    if engine.failures:
        print("failed methods:", file=sys.stderr)
        for name, error in sorted(engine.failures.items()):
            print(f"  {name}: {error}", file=sys.stderr)
        return 1
    return 0


def _value(text: str):
    """A --option value: a number, a word, or a comma-separated list of them."""
    def one(item):
        for cast in (int, float):
            try:
                return cast(item)
            except ValueError:
                pass
        return {"none": None, "true": True, "false": False}.get(item.lower(), item)

    return [one(v) for v in text.split(",") if v] if "," in text else one(text)


def parse_options(items) -> dict:
    options: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        track, dot, name = key.partition(".")
        if not sep or not dot:
            raise UsageError(f"--option expects TRACK.KEY=VALUE, got {item!r}")
        if track not in TRACKS:
            raise UnknownName("track", track, TRACKS)
        options.setdefault(track, {})[name] = _value(value)
    return options


def cmd_run(args) -> int:
    tracks = select_tracks(args.tracks)
    options = parse_options(args.option)
    if args.rates:
        options.setdefault("detection", {})["rates"] = [float(r) for r in args.rates.split(",")]
    if args.pool_size:
        options["pool_size"] = args.pool_size
    engine = _engine(args, args.dataset, args.seeds, args.epochs, **options)
    return _execute(engine, tracks, args)


def cmd_all(args) -> int:
    profile = PROFILES[args.profile]
    options = {k: v for k, v in profile.items() if k not in ("seeds", "epochs")}
    args.methods = "*"
    engine = _engine(args, DEFAULT_DATASET, profile["seeds"], profile["epochs"], profile=args.profile, **options)
    return _execute(engine, list(TRACKS.values()), args)


def cmd_report(args) -> int:
    for path in write_leaderboards(Store(args.results), args.leaderboards):
        print(f"wrote {path}")
    return 0


def cmd_export(args) -> int:
    rows = []
    for record in Store(args.results).records():
        if "metrics" not in record:
            continue
        config = ";".join(f"{k}={v}" for k, v in sorted(record["config"].items()))
        for metric, value in sorted(record["metrics"].items()):
            rows.append([record["dataset"], record["track"], record["method"], metric, record["seed"], value, config])
    header = ["dataset", "track", "method", "metric", "seed", "value", "config"]

    def write(handle):
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)

    if args.out == "-":
        write(sys.stdout)
    else:
        def write_file(tmp: Path):
            with open(tmp, "w", newline="") as handle:
                write(handle)

        atomic_write(Path(args.out), write_file)
    return 0


COMMANDS = {"list": cmd_list, "run": cmd_run, "all": cmd_all, "report": cmd_report, "export": cmd_export}


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # raised inside torch.func.jvp itself (torch >= 2.10); nothing a user can act on
    warnings.filterwarnings("ignore", message=r"`torch.jit.script` is deprecated", category=FutureWarning)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        try:
            registry.load_plugins(getattr(args, "plugin", []))
        except ImportError as error:
            raise UsageError(f"cannot import plugin: {error}") from None
        return COMMANDS[args.command](args)
    except (UnknownName, DatasetNotFound, UsageError) as error:
        print(f"hardbench: error: {error}", file=sys.stderr)
        return 2
