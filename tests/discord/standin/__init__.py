"""A wire-level stand-in for Discord's gateway and REST API, for tests."""

from tests.discord.standin.server import Recorded, StandIn

__all__ = ["Recorded", "StandIn"]
