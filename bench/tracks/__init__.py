"""Tracks: each module has ``NAME``, ``Settings``, ``plan``, ``run``, ``report``, ``METRIC`` and ``verdict_rows``
(see ``bench.tracks.base``). Adding a track: write such a module and list it in ``TRACKS``.
"""
from __future__ import annotations

from ..errors import UnknownName, UsageError
from . import detection, geometry, meta, pathways, reference, resampling, split
from .base import Report  # noqa: F401  (re-exported for track authors)

TRACKS = {module.NAME: module for module in (detection, split, pathways, resampling, meta, reference, geometry)}
RENAMED = {"methods": "meta"}  # old track names a user may have typed


def track_named(name: str):
    if name in RENAMED:
        raise UsageError(f"the track {name!r} is now called {RENAMED[name]!r}: use --tracks {RENAMED[name]}")
    if name not in TRACKS:
        raise UnknownName("track", name, TRACKS)
    return TRACKS[name]


def select_tracks(names: str | list[str]) -> list:
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if names == ["all"]:
        return list(TRACKS.values())
    return [track_named(n) for n in names]
