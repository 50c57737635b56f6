"""Tracks: each module has ``NAME``, ``run(engine)`` that writes metric records, and
``report(records) -> Report`` that turns those records into a leaderboard.

Adding a track: write a module with those three names and list it in ``TRACKS``.
"""
from __future__ import annotations

from ..errors import UnknownName
from . import detection, geometry, methods_meta, pathways, reference, resampling, split
from .base import Report  # noqa: F401  (re-exported for track authors)

TRACKS = {module.NAME: module for module in (detection, split, pathways, resampling, methods_meta, reference,
                                              geometry)}


def select_tracks(names: str | list[str]) -> list:
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if names == ["all"]:
        return list(TRACKS.values())
    for name in names:
        if name not in TRACKS:
            raise UnknownName("track", name, TRACKS)
    return [TRACKS[n] for n in names]
