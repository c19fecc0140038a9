"""Loading a plugin into the running App: its schema, its words, what it may use
(`PluginContext`), and its commands, events and jobs registered all or none."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bot.data_map import audit_recorder
from bot.plugin import Plugin, PluginContext, PluginScheduler

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

__all__ = ["load_plugin", "unload_plugin"]


def context_for(app: App, cls: type[Plugin]) -> PluginContext:
    settings = app.settings
    return PluginContext(
        name=cls.name,
        settings=settings.plugin_section(cls.settings_key) if cls.settings_key else None,
        db=app.db,
        delivery=app.delivery,
        scheduler=PluginScheduler(app.scheduler, cls.name),
        clock=app.clock,
        translator=app.translator,
        associations=app.directory,
        timezone_name=settings.bot.timezone,
        organiser_rooms=tuple(settings.bot.organiser_rooms),
        is_organiser=app.is_organiser,
        health=app.health,
        commands=app.dispatcher.registry.specs,
        check_room=app.check_room,
        people=app.people,
        fetcher=app.fetcher,
        member_rooms=app.member_rooms,
        metrics=app.metrics.for_plugin(cls.name),
        log=logging.getLogger(f"plugins.{cls.name}"),
        audit=audit_recorder(app.audit, app.directory, app.clock),
        privacy=app.privacy,
    )


async def load_plugin(app: App, cls: type[Plugin]) -> Plugin:
    if cls.migrations is not None:
        await cls.migrations.upgrade(app.db)
    if cls.locales:
        app.translator.load_dir(Path(cls.locales))
    plugin = cls(context_for(app, cls))
    await plugin.on_start()
    # Register everything, or nothing: a clash leaves no half-loaded plugin behind.
    jobs = plugin.job_handlers()
    try:
        app.dispatcher.add(cls.name, plugin.command_handlers(), plugin.event_handlers())
        for name, fn in jobs:
            app.scheduler.register(cls.name, name, fn)
    except Exception:
        app.dispatcher.remove(cls.name)
        app.scheduler.unregister(cls.name)
        await plugin.on_stop()
        raise
    log.debug("loaded plugin %s", cls.name)
    return plugin


async def unload_plugin(app: App, plugin: Plugin) -> None:
    try:
        await plugin.on_stop()
    except Exception:
        log.exception("plugin %s failed to stop cleanly", plugin.name)
    finally:
        app.dispatcher.remove(plugin.name)
        app.scheduler.unregister(plugin.name)
