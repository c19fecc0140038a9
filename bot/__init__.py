"""Samverkan: a chat bot for a party district and its associations, on Discord and Matrix."""

__version__ = "0.1.0"
