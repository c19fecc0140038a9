"""The database: one SQLite file by default, migrations per namespace."""

from bot.storage.database import Database
from bot.storage.migrations import Migrations, SchemaTooNewError

__all__ = ["Database", "Migrations", "SchemaTooNewError"]
