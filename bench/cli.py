"""Command line: ``python -m bench {list,run,all,report,compare,export}`` (also ``hardbench``).

Every command first builds and validates a ``bench.config.RunConfig`` (each selected
track's settings included), so bad input stops with one line and exit status 2 before
anything is loaded, trained or written.
"""
from __future__ import annotations

import argparse
import csv
import logging
import sys
import warnings
from pathlib import Path

from . import registry
from .compare import compare_trees, method_against_field
from .config import PROFILES, DatasetSpec, ExecutorSettings, RunConfig, build_engine, profile_settings
from .data import LAYOUTS, DatasetNotFound
from .errors import UnknownName, UsageError
from .executor import make_executor
from .export import export_scores
from .leaderboard import methods_table, write_leaderboards
from .recipes import RECIPES, recipe_for
from .site import write_site
from .store import Store, atomic_write, remove_orphaned_temps
from .tracks import TRACKS, select_tracks, track_named

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
    p.add_argument("--seeds", type=int, help="number of estimation seeds, 0..N-1 (default: the profile's, 3)")
    p.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p.add_argument("--model", help="override the recipe's model (mlp, cnn, resnet18)")
    p.add_argument("--recipe", help=f"a named recipe instead of the dataset's default ({', '.join(RECIPES)})")
    p.add_argument("--subset", type=int, help="keep a stratified random subset of this many samples of every pool "
                   "(detection, resampling, reference: of the train split; split, pathways, meta: of train + test "
                   "merged); the test split stays whole")
    p.add_argument("--rates", help="detection rates, comma-separated: the same as --option detection.rates=...")
    p.add_argument("--pool-size", type=int, help=argparse.SUPPRESS)  # renamed --subset: a one-line hint
    p.add_argument("--option", action="append", default=[], metavar="TRACK.KEY=VALUE",
                   help="a track setting, e.g. pathways.seeds=10 or pathways.ratios=0,0.25,1 (repeatable)")
    p.add_argument("--data-root", default="data", help="torchvision datasets folder (default: data/)")
    p.add_argument("--download", action="store_true", help="allow torchvision to download the dataset")
    p.add_argument("--noise", help="CIFAR-N human label set: cifar10n aggre (default), random1, random2, random3, "
                   "worse; cifar100n noisy; cifar10-jpeg clean (default), aggre, worst")
    p.add_argument("--layout", default="auto", choices=LAYOUTS,
                   help="how 4-D npz images are stored: (N, C, H, W) or (N, H, W, C) (default: auto, from the shape)")
    p.add_argument("--profile", default="default", choices=list(PROFILES),
                   help="seeds and track settings preset (bench/config.py); --seeds and --option override it")
    p.add_argument("--no-report", action="store_true", help="do not regenerate the leaderboards afterwards")
    _execution(p)
    _common(p, leaderboards=True)

    p = sub.add_parser("all", help="every method through every track on the embedded default dataset")
    p.add_argument("--profile", default="default", choices=list(PROFILES))
    _execution(p)
    _common(p, leaderboards=True)

    p = sub.add_parser("report", help="regenerate the leaderboards from stored results")
    p.add_argument("--readme", action="store_true", help="also refresh the README's generated blocks")
    p.add_argument("--html", action="store_true", help="also write <leaderboards>/index.html, a self-contained site "
                   "of every board (sortable tables, plots inline; opens from disk)")
    _common(p, leaderboards=True)

    p = sub.add_parser("compare", help="a method against the field, or two result folders / board trees")
    p.add_argument("what", nargs="+", metavar="METHOD | DIR_A DIR_B",
                   help="a method name (against the field in --results), or two result or leaderboard folders")
    _common(p)

    p = sub.add_parser("export", help="stored results as a tidy CSV")
    p.add_argument("--out", default="-", help="CSV file (default: standard output), or a .parquet file; with "
                   "--scores, a folder")
    p.add_argument("--scores", action="store_true", help="export every stored per-sample score vector instead "
                   "(CSV, or .npz for pools over 20000 samples; see bench/export.py)")
    _common(p, plugin=False)
    return parser


def cmd_list(args) -> int:
    names = registry.list_methods(args.pattern)
    print(methods_table(names, "github" if args.markdown else "simple") if args.details else "\n".join(names))
    return 0


def run_config(args, dataset: str, tracks: list, methods: str = "*", seeds: int | None = None,
               epochs: int | None = None, options: dict | None = None) -> RunConfig:
    """The validated configuration of a run; nothing is loaded yet."""
    profile = profile_settings(getattr(args, "profile", "default"))
    options = dict(options or {})
    for name, values in options.items():
        track_named(name).Settings.build(values)  # unknown keys and bad types first, with their own message
        if name not in {t.NAME for t in tracks}:
            raise UsageError(f"--option {name}.{next(iter(values))} is given but the track {name!r} is not selected "
                             "(--tracks)")
    settings = tuple(t.Settings.build(profile.get(t.NAME, {}), options.get(t.NAME, {})) for t in tracks)
    model = getattr(args, "model", None)
    named = getattr(args, "recipe", None)
    if named is None and profile.get("recipe"):
        named = f"{dataset}-{profile['recipe']}"
        if named not in RECIPES:
            raise UsageError(f"the {args.profile} profile needs a recipe {named!r}; datasets that have one: "
                             + ", ".join(n.removesuffix(f"-{profile['recipe']}") for n in RECIPES
                                         if n.endswith(f"-{profile['recipe']}")))
    recipe = recipe_for(dataset, named, epochs=epochs or profile.get("epochs"), model=model,
                        **({"model_kwargs": {}} if model else {}))  # the recipe's model options belong to its model
    config = RunConfig(
        dataset=DatasetSpec(dataset, str(getattr(args, "data_root", "data")), getattr(args, "download", False),
                            getattr(args, "noise", None), getattr(args, "layout", "auto")),
        recipe=recipe, seeds=seeds or profile["seeds"],
        methods=tuple(m.name for m in registry.select_methods(methods)), tracks=settings,
        pool_size=getattr(args, "subset", None), profile=getattr(args, "profile", "default"), device=args.device,
        results=str(args.results), plugins=tuple(getattr(args, "plugin", [])), quiet=args.quiet,
        executor=ExecutorSettings(args.executor, args.jobs, args.threads, _slurm_parameters(args),
                                  args.slurm_array_parallelism))
    config.validate()
    return config


def _slurm_parameters(args) -> dict:
    params = {"timeout_min": args.slurm_time}
    if args.executor == "slurm":
        params.update({k: v for k, v in {"slurm_partition": args.slurm_partition,
                                         "gpus_per_node": args.slurm_gpus_per_task or None}.items() if v})
    for item in args.slurm_param:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--slurm-param expects KEY=VALUE, got {item!r}")
        params[key] = _value(value)
    return params


def _execute(config: RunConfig, tracks, args, readme: bool = False) -> int:
    if config.executor.threads:
        import torch

        torch.set_num_threads(config.executor.threads)
    engine = build_engine(config, make_executor(config))
    if engine.store.root.exists():  # what a killed run was writing when it died
        remove_orphaned_temps(engine.store.root)
    for track in tracks:
        engine.run_track(track)
    if not getattr(args, "no_report", False):
        for path in write_leaderboards(engine.store, args.leaderboards, readme=readme, only=engine.scope):
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
    """``--option TRACK.KEY=VALUE`` items as {track: {key: value}}; each track's ``Settings``
    checks the keys and types (``TrackSettings.build``)."""
    options: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        track, dot, name = key.partition(".")
        if not sep or not dot:
            raise UsageError(f"--option expects TRACK.KEY=VALUE, got {item!r}")
        options.setdefault(track_named(track).NAME, {})[name] = _value(value)
    return options


def cmd_run(args) -> int:
    if args.pool_size is not None:
        raise UsageError("--pool-size is now --subset (one stratified subset of every pool): use --subset "
                         f"{args.pool_size}")
    tracks = select_tracks(args.tracks)
    options = parse_options(args.option)
    if args.rates:
        options.setdefault("detection", {})["rates"] = _value(args.rates)
    config = run_config(args, args.dataset, tracks, args.methods, args.seeds, args.epochs, options)
    return _execute(config, tracks, args)


def cmd_all(args) -> int:
    tracks = list(TRACKS.values())
    config = run_config(args, DEFAULT_DATASET, tracks)
    # the README shows the default configuration of the built-in methods only
    return _execute(config, tracks, args, readme=args.profile == "default" and not args.plugin)


def cmd_report(args) -> int:
    for path in write_leaderboards(Store(args.results), args.leaderboards, readme=args.readme):
        print(f"wrote {path}")
    if args.html:
        print(f"wrote {write_site(args.leaderboards)}")
    return 0


def cmd_compare(args) -> int:
    if len(args.what) == 1:
        registry.get_method(args.what[0])  # an unknown name is a usage error
        print(method_against_field(args.what[0], args.results))
    elif len(args.what) == 2:
        for folder in args.what:
            if not Path(folder).is_dir():
                raise UsageError(f"compare: {folder} is not a folder")
        print(compare_trees(*args.what))
    else:
        raise UsageError("compare takes a method name, or two folders")
    return 0


def cmd_export(args) -> int:
    if args.scores:
        if args.out == "-":
            raise UsageError("export --scores writes a folder: give --out DIR")
        for path in export_scores(args.results, args.out):
            print(f"wrote {path}", file=sys.stderr)
        return 0
    if args.out.endswith(".parquet"):
        return _export_parquet(args.results, Path(args.out))
    rows = []
    for record in Store(args.results).records():
        if "metrics" not in record or record["track"] == "scores" or record["method"].startswith("_"):
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


def _export_parquet(results: str, out: Path) -> int:
    """The stored records as ``bench.results`` gives them, as parquet (pyarrow: ``pip install -e ".[parquet]"``)."""
    import json

    from .api import results as stored

    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise UsageError("export to .parquet needs pyarrow: pip install -e \".[parquet]\"") from None
    table = stored(results)
    table["config"] = [json.dumps(c, sort_keys=True) for c in table["config"]]
    atomic_write(out, lambda tmp: table.to_parquet(tmp, index=False))
    return 0


COMMANDS = {"list": cmd_list, "run": cmd_run, "all": cmd_all, "report": cmd_report, "compare": cmd_compare,
            "export": cmd_export}


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


def console() -> None:
    """The ``hardbench`` script: ``python -m bench`` (which fixes string hashing, for identical plots)."""
    import os

    os.execv(sys.executable, [sys.executable, "-m", "bench", *sys.argv[1:]])


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
