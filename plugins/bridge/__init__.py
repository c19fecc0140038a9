"""The bridge plugin: association channels across Discord, Matrix and the console."""

from plugins.bridge.plugin import BridgePlugin

PLUGIN = BridgePlugin

__all__ = ["PLUGIN", "BridgePlugin"]
