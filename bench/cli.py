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
from .errors import UnknownName, UsageError
from .executor import EngineSpec, InlineExecutor, ProcessExecutor, SubmititExecutor
from .export import export_scores
from .inject import default_sources
from .leaderboard import methods_table, write_leaderboards
from .recipes import RECIPES, recipe_for
from .store import Store, atomic_write, remove_orphaned_temps
from .tracks import TRACKS, select_tracks
from .train import resolve_device

# What `bench all` runs on the embedded default dataset; each track reads its own profile settings.
PROFILES = {"smoke": {"seeds": 2, "epochs": 8}, "default": {"seeds": 3, "epochs": None},
            "full": {"seeds": 5, "epochs": None}}
DEFAULT_DATASET = "digits"


def _common(parser, results=True, leaderboards=False, plugin=True):
    if results:
        parser.add_argument("--results", default="results", help="results folder (default: results/)")
    if leaderboards:
        parser.add_argument("--leaderboards", default="leaderboards", help="leaderboard folder (default: leaderboards/)")
    if plugin:
        parser.add_argument("--plugin", action="append", default=[], metavar="MOD",
                            help="import MOD to register more methods (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="print failed methods' tracebacks")


def _execution(parser):
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--jobs", type=int, default=1, help="local worker processes for the training units (default 1)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads of this process and of each worker (default: the cores, divided among "
                             "the --jobs workers); CPU results are bit-for-bit reproducible at a fixed thread count")
    parser.add_argument("--executor", default="inline", choices=["inline", "local", "slurm"],
                        help="where training units run: this process (or --jobs workers), submitit's local "
                             "executor, or a SLURM cluster through submitit")
    parser.add_argument("--slurm-partition", help="SLURM partition")
    parser.add_argument("--slurm-time", type=int, default=60, help="minutes per SLURM job (default 60)")
    parser.add_argument("--slurm-gpus-per-task", type=int, default=0, help="GPUs per SLURM task")
    parser.add_argument("--slurm-array-parallelism", type=int, default=16,
                        help="at most this many jobs; units are grouped into them (default 16)")
    parser.add_argument("--slurm-param", action="append", default=[], metavar="KEY=VALUE",
                        help="any other submitit parameter, passed through (repeatable)")


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
    p.add_argument("--noise", help="CIFAR-N human label set: cifar10n aggre (default), random1, random2, random3, "
                   "worse; cifar100n noisy")
    p.add_argument("--no-report", action="store_true", help="do not regenerate the leaderboards afterwards")
    _execution(p)
    _common(p, leaderboards=True)

    p = sub.add_parser("all", help="every method through every track on the embedded default dataset")
    p.add_argument("--profile", default="default", choices=list(PROFILES))
    _execution(p)
    _common(p, leaderboards=True)

    p = sub.add_parser("report", help="regenerate the leaderboards from stored results")
    p.add_argument("--readme", action="store_true", help="also refresh the README's generated blocks")
    _common(p, leaderboards=True)

    p = sub.add_parser("export", help="stored results as a tidy CSV")
    p.add_argument("--out", default="-", help="CSV file (default: standard output); with --scores, a folder")
    p.add_argument("--scores", action="store_true", help="export every stored per-sample score vector instead "
                   "(CSV, or .npz for pools over 20000 samples; see bench/export.py)")
    _common(p, plugin=False)
    return parser


def cmd_list(args) -> int:
    names = registry.list_methods(args.pattern)
    print(methods_table(names, "github" if args.markdown else "simple") if args.details else "\n".join(names))
    return 0


def engine_spec(args, dataset_name, seeds, epochs=None, **options) -> EngineSpec:
    """Everything that defines a run, as plain values (a worker rebuilds the engine from it)."""
    recipe = recipe_for(dataset_name, getattr(args, "recipe", None), epochs=epochs, model=getattr(args, "model", None))
    if getattr(args, "model", None):  # the recipe's model options belong to its own model
        from dataclasses import replace
        recipe = replace(recipe, model_kwargs={})
    dataset_args = {"name": dataset_name, "data_root": str(getattr(args, "data_root", "data")),
                    "download": getattr(args, "download", False), "subset": getattr(args, "subset", None),
                    "noise": getattr(args, "noise", None)}
    return EngineSpec(dataset_args, recipe, args.device, str(args.results), {**options, "seeds": seeds},
                      tuple(m.name for m in registry.select_methods(getattr(args, "methods", "*"))),
                      tuple(getattr(args, "plugin", [])))


def make_engine(spec: EngineSpec, executor=None, quiet: bool = True) -> Engine:
    options = dict(spec.options)
    seeds = options.pop("seeds")
    dataset = load_dataset(**spec.dataset_args)
    methods = [registry.get_method(name) for name in spec.methods]
    if any("folds" in m.needs for m in methods):
        _check_fold_classes(dataset, spec.recipe.folds)
    return Engine(dataset, spec.recipe, methods, list(range(seeds)), resolve_device(spec.device),
                  Store(spec.results), options=options, quiet=quiet, executor=executor or InlineExecutor(),
                  sources=default_sources(dataset, spec.dataset_args["data_root"]))


def _check_fold_classes(dataset, folds: int) -> None:
    import numpy as np

    counts = np.bincount(dataset.y_train.numpy(), minlength=dataset.num_classes)
    if counts.min() < 2:
        raise UsageError(f"class {int(counts.argmin())} has {int(counts.min())} training sample(s); the K-fold "
                         f"methods (cleanlab, holdout) need at least 2 per class (K = {folds} is reduced to fit)")


def _executor(args, spec: EngineSpec):
    if args.executor == "inline":
        return InlineExecutor() if args.jobs <= 1 else ProcessExecutor(spec, args.jobs, args.threads)
    params = {"timeout_min": args.slurm_time}
    if args.executor == "slurm":
        params.update({k: v for k, v in {"slurm_partition": args.slurm_partition,
                                         "gpus_per_node": args.slurm_gpus_per_task or None}.items() if v})
    for item in args.slurm_param:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--slurm-param expects KEY=VALUE, got {item!r}")
        params[key] = _value(value)
    return SubmititExecutor(spec, str(Path(args.results) / "_submitit"), args.executor, args.slurm_array_parallelism,
                            params, args.threads)


def _engine(args, dataset_name, seeds, epochs=None, **options) -> Engine:
    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if args.threads < 0:
        raise UsageError(f"--threads must be at least 1 (or 0 for the default), got {args.threads}")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    spec = engine_spec(args, dataset_name, seeds, epochs, **options)
    return make_engine(spec, _executor(args, spec), args.quiet)


def _execute(engine: Engine, tracks, args, readme: bool = False) -> int:
    if engine.store.root.exists():  # what a killed run was writing when it died
        remove_orphaned_temps(engine.store.root)
    for track in tracks:
        track.run(engine)
    if not getattr(args, "no_report", False):
        for path in write_leaderboards(engine.store, args.leaderboards, readme=readme):
            print(f"wrote {path}", file=sys.stderr)
    if engine.failures:
        print("failed methods:", file=sys.stderr)
        for name, result in sorted(engine.failures.items()):
            print(f"  {name}: {result.error}", file=sys.stderr)
            if args.verbose:
                print(result.traceback, file=sys.stderr)
        if not args.verbose:
            print("(run with -v for the tracebacks)", file=sys.stderr)
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
    """``--option TRACK.KEY=VALUE`` items, checked against each track's declared defaults:
    the key must exist and the value must have the default's type (a single value where a
    list is expected becomes a one-item list)."""
    options: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        track, dot, name = key.partition(".")
        if not sep or not dot:
            raise UsageError(f"--option expects TRACK.KEY=VALUE, got {item!r}")
        if track not in TRACKS:
            raise UnknownName("track", track, TRACKS)
        defaults = getattr(TRACKS[track], "DEFAULTS", {})
        if name not in defaults:
            raise UsageError(f"unknown option {track}.{name}; {track} options: {', '.join(sorted(defaults)) or 'none'}")
        options.setdefault(track, {})[name] = _checked(f"{track}.{name}", _value(value), defaults[name])
    return options


def _checked(key: str, value, default):
    def kind(v):
        return "number" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v).__name__

    if isinstance(default, list):
        value = value if isinstance(value, list) else [value]
        expected = {kind(d) for d in default}
        bad = [v for v in value if expected and kind(v) not in expected]
        if bad:
            raise UsageError(f"--option {key} expects a list of {'/'.join(sorted(expected))}, got {bad[0]!r}")
        return value
    if default is not None and kind(value) != kind(default):
        raise UsageError(f"--option {key} expects a {kind(default)} (default {default!r}), got {value!r}")
    if isinstance(default, int) and not isinstance(default, bool) and isinstance(value, float):
        raise UsageError(f"--option {key} expects a whole number (default {default!r}), got {value!r}")
    return value


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
    # the README shows the default configuration of the built-in methods only
    readme = args.profile == "default" and not args.plugin
    return _execute(engine, list(TRACKS.values()), args, readme=readme)


def cmd_report(args) -> int:
    for path in write_leaderboards(Store(args.results), args.leaderboards, readme=args.readme):
        print(f"wrote {path}")
    return 0


def cmd_export(args) -> int:
    if args.scores:
        if args.out == "-":
            raise UsageError("export --scores writes a folder: give --out DIR")
        for path in export_scores(args.results, args.out):
            print(f"wrote {path}", file=sys.stderr)
        return 0
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
        _load_plugins(getattr(args, "plugin", []))
        return COMMANDS[args.command](args)
    except (UnknownName, DatasetNotFound, UsageError) as error:
        print(f"hardbench: error: {error}", file=sys.stderr)
        return 2


def _load_plugins(modules) -> None:
    """Import plugins from the current directory too, for ``hardbench`` as for ``python -m bench``."""
    if modules and "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        registry.load_plugins(modules)
    except ImportError as error:
        raise UsageError(f"cannot import plugin: {error}") from None
    except registry.RegistrationError as error:
        raise UsageError(f"plugin cannot register: {error}") from None
