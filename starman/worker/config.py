"""What one worker needs to know: its configuration, built by the master before it forks.

``worker_config`` is the one place that turns the starman Settings into a WorkerConfig.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starman.config import Settings
from start_server.common.record import Record

if TYPE_CHECKING:  # ssl is imported at run time only when TLS is configured
    import ssl

__all__ = ["WorkerConfig", "in_process_config", "worker_config"]


class WorkerConfig(Record):
    """Everything a worker needs, built by ``worker_config``: no defaults here, the
    option table (``starman.config.OPTIONS``) has them."""

    __slots__ = (
        "keepalive",
        "keepalive_timeout",
        "read_timeout",
        "body_timeout",
        "write_timeout",
        "graceful_timeout",
        "max_requests",
        "max_worker_lifetime",
        "max_worker_memory",
        "max_keepalive_reqs",
        "max_connections",
        "max_request_body",
        "body_buffer_size",
        "tmp_dir",
        "limit_request_line",
        "limit_request_fields",
        "limit_request_field_size",
        "script_name",
        "forwarded_allow_ips",
        "access_log",
        "parent_pid",
        "generation",
        "ssl_context",
        "tls_fds",
    )

    def __init__(
        self,
        *,
        keepalive: bool,  # False = --disable-keepalive
        keepalive_timeout: float,
        read_timeout: float,  # whole request head
        body_timeout: float,
        write_timeout: float,
        graceful_timeout: float,  # drain deadline inside the worker
        max_requests: int,  # 0 = unlimited
        max_worker_lifetime: float,  # seconds; 0 = unlimited
        max_worker_memory: int,  # private bytes; 0 = unlimited
        max_keepalive_reqs: int,  # 0 = unlimited
        max_connections: int,  # --max-connections-per-worker
        max_request_body: int,
        body_buffer_size: int,
        tmp_dir: str | None,
        limit_request_line: int,
        limit_request_fields: int,
        limit_request_field_size: int,
        script_name: str,  # --path mount prefix ("" = none)
        forwarded_allow_ips: tuple[str, ...],
        # one access log line per request on "starman.access"
        access_log: bool,
        # exit (gracefully) when os.getppid() != parent_pid (None: do not watch)
        parent_pid: int | None,
        generation: str | None,  # environ["starman.generation"]
        ssl_context: ssl.SSLContext | None,  # TLS for the listeners in tls_fds
        # listener fds whose connections speak TLS
        tls_fds: frozenset[int],
    ) -> None:
        self.keepalive = keepalive
        self.keepalive_timeout = keepalive_timeout
        self.read_timeout = read_timeout
        self.body_timeout = body_timeout
        self.write_timeout = write_timeout
        self.graceful_timeout = graceful_timeout
        self.max_requests = max_requests
        self.max_worker_lifetime = max_worker_lifetime
        self.max_worker_memory = max_worker_memory
        self.max_keepalive_reqs = max_keepalive_reqs
        self.max_connections = max_connections
        self.max_request_body = max_request_body
        self.body_buffer_size = body_buffer_size
        self.tmp_dir = tmp_dir
        self.limit_request_line = limit_request_line
        self.limit_request_fields = limit_request_fields
        self.limit_request_field_size = limit_request_field_size
        self.script_name = script_name
        self.forwarded_allow_ips = forwarded_allow_ips
        self.access_log = access_log
        self.parent_pid = parent_pid
        self.generation = generation
        self.ssl_context = ssl_context
        self.tls_fds = tls_fds


def worker_config(
    settings: Settings,
    *,
    parent_pid: int | None,
    generation: str | None,
    ssl_context: ssl.SSLContext | None,
    tls_fds: frozenset[int],
    max_requests: int,
    stretch: float = 0.0,
) -> WorkerConfig:
    """The WorkerConfig for ``settings``; the keywords are what only the master knows.

    ``max_requests`` is given apart because the master adds each worker's jitter to
    ``settings.max_requests``; ``stretch`` is that jitter as a fraction of it, by which
    the lifetime and memory limits grow.
    """
    s = settings
    lifetime = (s.max_worker_lifetime or 0.0) * (1.0 + stretch)
    memory = int((s.max_worker_memory or 0.0) * (1.0 + stretch) * 1024 * 1024)
    return WorkerConfig(
        keepalive=s.keepalive,
        keepalive_timeout=s.keepalive_timeout,
        read_timeout=s.read_timeout,
        body_timeout=s.body_timeout,
        write_timeout=s.write_timeout,
        graceful_timeout=s.graceful_timeout,
        max_requests=max_requests,
        max_worker_lifetime=lifetime,
        max_worker_memory=memory,
        max_keepalive_reqs=s.max_keepalive_reqs,
        max_connections=s.max_connections_per_worker,
        max_request_body=s.max_request_body,
        body_buffer_size=s.body_buffer_size,
        tmp_dir=s.tmp_dir,
        limit_request_line=s.limit_request_line,
        limit_request_fields=s.limit_request_fields,
        limit_request_field_size=s.limit_request_field_size,
        script_name=s.path or "",
        forwarded_allow_ips=s.forwarded_allow_ips,
        access_log=bool(s.access_log)
        or (s.env == "development" and s.default_middleware),
        parent_pid=parent_pid,
        generation=generation,
        ssl_context=ssl_context,
        tls_fds=tls_fds,
    )


def in_process_config(settings: Settings | None = None) -> WorkerConfig:
    """The configuration of a worker driven in-process, with no master: the pre-fork
    rehearsal and bench/micro.py. No TLS, no generation, no recycling (a driver decides
    how many requests it sends, so no lifetime or memory limit either); everything else is ``settings`` (default: the option
    table's defaults)."""
    config = worker_config(
        Settings() if settings is None else settings,
        parent_pid=None,
        generation=None,
        ssl_context=None,
        tls_fds=frozenset(),
        max_requests=0,
    )
    config.max_worker_lifetime = 0.0
    config.max_worker_memory = 0
    return config
