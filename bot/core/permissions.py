"""Who may run what. Levels are ordered: an organiser may do what a member may."""

from __future__ import annotations

import enum


class Level(enum.IntEnum):
    MEMBER = 0
    ORGANISER = 50
