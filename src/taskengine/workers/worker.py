"""The worker process: one Runtime (engine, store, providers, hooks) serving queued runs.

SIGTERM or SIGINT stop it gracefully: no new job is taken, runs in flight get
`queue.shutdown_timeout` seconds to finish, then are cancelled (their last checkpoint stays)
and handed back to the queue at once, where another worker resumes them.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from taskengine.errors import ConfigError
from taskengine.workers.app import QueueApp, queue_conninfo, require_procrastinate

__all__ = ["run_worker", "store_url_for"]

logger = logging.getLogger("taskengine.queue")  # the name users configure; kept


def store_url_for(db_url: str, concurrency: int) -> str:
    """The store URL with a connection pool sized for `concurrency` runs (unless it sets one)."""
    parts = urlsplit(db_url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    query.setdefault("pool_size", str(max(4, min(concurrency, 16))))
    return urlunsplit(parts._replace(query=urlencode(query)))


async def run_worker(
    settings: Any,
    *,
    concurrency: int = 20,
    queue: str | None = None,
    hook_modules: Iterable[str] = (),
    name: str | None = None,
) -> None:
    """Execute queued runs until SIGTERM/SIGINT (or cancellation)."""
    require_procrastinate("taskengine worker")
    queue_conninfo(settings.db)  # a clear error before anything opens
    if concurrency < 1:
        raise ConfigError("--concurrency must be at least 1")
    qsettings = settings.queue
    if queue:
        qsettings = qsettings.model_copy(update={"name": queue})
    from taskengine.runtime import open_runtime

    runtime = await open_runtime(
        settings,
        hook_modules=hook_modules,
        store_url=store_url_for(settings.db, concurrency),
    )
    async with (
        runtime,
        QueueApp(settings.db, qsettings, lease_ttl=settings.limits.lease_ttl) as qapp,
    ):
        worker_name = name or f"{socket.gethostname()}-{os.getpid()}"
        logger.info(
            "worker %s: taking runs from queue %r, %d at a time",
            worker_name,
            qsettings.name,
            concurrency,
        )
        await qapp.app.run_worker_async(
            queues=[qsettings.name],
            concurrency=concurrency,
            name=worker_name,
            additional_context={"runtime": runtime},
            shutdown_graceful_timeout=qsettings.shutdown_timeout,
            update_heartbeat_interval=qsettings.heartbeat,
            stalled_worker_timeout=qsettings.stalled_after,
            install_signal_handlers=True,
        )
