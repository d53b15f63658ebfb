"""What the hub runs around a learner's server: their engine starts first and stops after.

``pre_spawn`` starts the learner's engine (or finds it running), puts the
course's base image in it, and gives the server ``DOCKER_HOST`` for it;
``post_stop`` stops the engine when the server stops, whether the learner,
the instructor, the idle culler or the hub's own shutdown stopped it.
Both run the slow parts in a thread, so the hub keeps answering meanwhile.
"""
from __future__ import annotations

import asyncio
from typing import Any

from ..errors import SetupError
from .engines import ROOTLESS, start_engine, stop_engine
from .learners import lookup
from .registry import learner_environment
from .state import load_settings, paths


def _learner(spawner: Any):
    learner = lookup(spawner.user.name)
    if learner is None:
        raise SetupError(f"{spawner.user.name} has no system account: run ./course classroom up again.")
    return learner


async def pre_spawn(spawner: Any) -> None:
    """Start the learner's engine and point their server at it."""
    where = paths()
    settings = load_settings(where)
    learner = _learner(spawner)
    host = await asyncio.to_thread(start_engine, where, learner, settings.engine, disk_gb=settings.disk_gb,
                                   progress=spawner.log.info)
    env = {"DOCKER_HOST": host, "COURSE_WORKSPACE": str(learner.course_dir / "workspace"),
           **learner_environment(settings, learner.name)}
    if settings.engine == ROOTLESS:
        env["XDG_RUNTIME_DIR"] = str(learner.runtime_dir)
    spawner.environment = {**spawner.environment, **env}


async def post_stop(spawner: Any) -> None:
    """Stop the learner's engine once their server has stopped (their images and cache stay)."""
    where = paths()
    settings = load_settings(where)
    learner = _learner(spawner)
    if await asyncio.to_thread(stop_engine, where, learner, settings.engine):
        spawner.log.info(f"{learner.name}: engine stopped")
