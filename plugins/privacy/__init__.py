"""A person's own data (`my-data`, `forget-me`) and the organisers' audit log (`audit`).
See docs/privacy.md."""

from plugins.privacy.plugin import PrivacyPlugin

PLUGIN = PrivacyPlugin

__all__ = ["PLUGIN", "PrivacyPlugin"]
