"""Linking a person's Matrix and Discord accounts (issue 10). See docs/accounts.md."""

from plugins.accounts.plugin import AccountsPlugin

PLUGIN = AccountsPlugin

__all__ = ["PLUGIN", "AccountsPlugin"]
