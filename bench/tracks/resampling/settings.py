"""Track R's settings and the configurations they plan (see ``bench.tracks.resampling``)."""
from __future__ import annotations


from dataclasses import dataclass
from typing import NamedTuple

from ...errors import UsageError
from ...resample import ASSIGNMENTS, FILLERS
from ..base import TrackSettings, Unit, protocol_seeds


NAME = "resampling"


@dataclass(frozen=True)
class Settings(TrackSettings):
    NAME = "resampling"
    ENUMERATED = ("alphas", "fillers", "prune", "controls", "control_alphas", "control_fillers", "control_methods",
                  "protocol_seeds")
    RENAMED = {"seeds": "protocol_seeds"}
    alphas: tuple[float, ...] = (0.0, 1.0, 3.0)
    fillers: tuple[str, ...] = ("duplicate", "smote")
    keep: str = "hardest"
    protocol_seeds: int = 3
    split_seed: int = 0
    epochs: int | None = None  # protocol models' epochs (None: the recipe's protocol_epochs, else its epochs)
    prune: tuple[float, ...] = ()
    controls: tuple[str, ...] = ("permuted", "inverse")
    # a control costs one model per (method, seed): by default two methods at α = 1, duplicate filler
    control_alphas: tuple[float, ...] | None = (1.0,)
    control_fillers: tuple[str, ...] | None = ("duplicate",)
    control_methods: tuple[str, ...] | None = ("aum", "loss")

    def validate(self) -> None:
        self.check_subset("fillers", FILLERS)
        self.check_subset("controls", [a for a in ASSIGNMENTS if a != "hardness"])
        self.check_choice("keep", ["hardest", "random"])
        self.check_range("prune", 0.0, 1.0)
        self.check_range("protocol_seeds", 1, 10_000, inclusive=True)
        if any(a < 0 for a in self.alphas):
            raise UsageError(f"The 'alphas' parameter of resampling must be ≥ 0. Got {min(self.alphas)!r} instead.")
        if "holdout" in self.fillers and not self.prune:
            raise UsageError("filler 'holdout' fills classes from pruned real samples, so it needs the pruning case "
                             "study (e.g. --option resampling.prune=0.5); the whole train split has no unused samples")


# ---- settings ---------------------------------------------------------------------------------------------------

def options(settings: Settings) -> dict:
    """The settings as the planning code reads them: lists, pruning fractions without 0."""
    out = settings.to_dict()
    out["controls"] = [a for a in out["controls"] if a != "hardness"]
    out["prune"] = [float(p) for p in out["prune"] if p]
    return out


class Setting(NamedTuple):
    """A configuration's place in the study, with the defaults for keys a config leaves out."""
    prune: float
    alpha: float
    filler: str
    assignment: str


def setting(config: dict) -> Setting:
    """(prune, alpha, filler, assignment) of a record's config, with the defaults for absent keys."""
    return Setting(float(config.get("prune", 0.0)), float(config["alpha"]), config["filler"],
                   config.get("assignment", "hardness"))


def configs(opts: dict, method: str | None = None) -> list[dict]:
    """Every configuration to run (for ``method``, where given): per pruning fraction (0 first),
    α = 0 once, and each α > 0 with each filler (``holdout`` only where pruned) under
    ``hardness`` and, where the control options select it, each control assignment."""
    out = []
    chosen = method is None or opts["control_methods"] is None or method in opts["control_methods"]
    controls = opts["controls"] if chosen else []
    for prune in [0.0, *opts["prune"]]:
        pruned = {"prune": prune} if prune else {}
        for alpha in opts["alphas"]:
            if alpha == 0:
                out.append({"alpha": 0.0, "filler": "none", "keep": opts["keep"], **pruned})
                continue
            for filler in opts["fillers"]:
                if filler == "holdout" and not prune:
                    continue
                controlled = ((opts["control_alphas"] is None or alpha in opts["control_alphas"])
                              and (opts["control_fillers"] is None or filler in opts["control_fillers"]))
                for assignment in ["hardness", *(controls if controlled else [])]:
                    out.append({"alpha": float(alpha), "filler": filler, "keep": opts["keep"], **pruned,
                                **({"assignment": assignment} if assignment != "hardness" else {})})
    shared = {"split_seed": opts["split_seed"], "epochs": opts["epochs"]}
    return [{**config, **shared} for config in out]


def plan(engine, settings: Settings) -> list[Unit]:
    opts = options(settings)
    return [Unit(config, m.name, seed) for m in engine.methods for config in configs(opts, m.name)
            for seed in protocol_seeds(settings.protocol_seeds)]
