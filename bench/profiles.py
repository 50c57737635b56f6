"""Profiles (``--profile``), in one place: a seed count, a recipe override and per-track
settings, applied beneath the user's own ``--option`` values. ``default`` is every track's
own defaults; a board made under another profile says so in its file name.
"""
from __future__ import annotations

#: name -> {"seeds": estimation seeds, "epochs": recipe override or None, track name: settings overrides}
PROFILES: dict[str, dict] = {
    "smoke": {"seeds": 2, "epochs": 8,
              "detection": {"types": ["label-uniform"]},
              "split": {"protocol_seeds": 1},
              "pathways": {"protocol_seeds": 1, "ratios": [0.0, 1.0]},
              "resampling": {"protocol_seeds": 2, "alphas": [0, 1], "fillers": ["duplicate"],
                             "controls": ["permuted"]}},
    "default": {"seeds": 3, "epochs": None},
    # the estimation model trained until it fits the noisy labels (each dataset's ``<name>-memorise`` recipe),
    # where training-dynamics methods are meant to earn their keep; label noise at three rates
    "memorise": {"seeds": 3, "epochs": None, "recipe": "memorise",
                 "detection": {"types": ["label-uniform", "label-pair", "label-instance"], "rates": [0.1, 0.2, 0.4]}},
    "full": {"seeds": 5, "epochs": None,
             "detection": {"rates": [0.05, 0.1, 0.2]},
             "split": {"protocol_seeds": 5},
             "pathways": {"protocol_seeds": 5, "ratios": [0.0, 0.25, 0.5, 0.75, 1.0]},
             "resampling": {"protocol_seeds": 5, "prune": [0.5], "fillers": ["duplicate", "smote", "holdout"],
                            "control_alphas": None, "control_fillers": None, "control_methods": None}},
}
