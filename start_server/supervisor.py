"""The superdaemon's loop: bind, export, spawn, then turn signals and exits into actions.

The decisions are ``generations.on_event``'s; this module only performs them (fork/exec,
kill, status file) and waits on the SignalWaker with the time left to the next deadline.
Raises SupervisorError for setup failures; never imports psutil.
"""

from __future__ import annotations

import os
import selectors
import signal
import socket
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

from start_server import generations as gen
from start_server.common.listen import adopt_systemd, bind_spec
from start_server.common.portspec import (
    ENV_GENERATION,
    ENV_LISTEN_FDNAMES,
    ENV_LISTEN_FDS,
    ENV_LISTEN_PID,
    ENV_PORT,
    PortSpec,
    Transport,
    format_server_starter_port,
)
from start_server.common.proc import (
    ExecError,
    PidFile,
    PidFileError,
    atomic_write,
    reap,
    spawn,
)
from start_server.common.record import Record
from start_server.common.sdnotify import ENV_NOTIFY_SOCKET, notify
from start_server.common.sigwake import SignalWaker
from start_server.config import DEFAULT_AUTO_RESTART_INTERVAL, Settings
from start_server.logline import log
from start_server.readiness import NotifyListener, failure_file

# Only for mypy: the supervisor keeps what it imports for its whole life, and
# subprocess (with threading) costs ~0.5 MB RSS; LogTarget imports it for a piped log.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess

__all__ = ["SupervisorError", "load_envdir", "run"]

HANDLED_SIGNALS = (
    signal.SIGHUP,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGALRM,
    signal.SIGCHLD,
)

# The compatibility variables Perl exports when the matching option is given.
EXPORTED_OPTIONS = (
    ("envdir", "ENVDIR"),
    ("enable_auto_restart", "ENABLE_AUTO_RESTART"),
    ("kill_old_delay", "KILL_OLD_DELAY"),
    ("auto_restart_interval", "AUTO_RESTART_INTERVAL"),
)


class SupervisorError(Exception):
    """start_server cannot start: a socket, the log, the envdir, the pid or status file."""


# --------------------------------------------------------------------------- envdir


def load_envdir(path: str) -> dict[str, str]:
    """Read a daemontools envdir: one file per variable, its first line the value.

    Dotfiles are skipped, as are files that cannot be read or are empty (Perl's
    ``_load_env``). Raises OSError when the directory itself cannot be listed.
    """
    values: dict[str, str] = {}
    for name in sorted(os.listdir(path)):
        if name.startswith("."):
            continue
        try:
            with open(os.path.join(path, name), "rb") as f:
                line = f.readline()
        except OSError:
            continue
        if not line:
            continue
        values[name] = line.rstrip(b"\n").decode(errors="surrogateescape")
    return values


def _number_text(value: float) -> str:
    return f"{value:g}"


def _option_exports(settings: Settings) -> dict[str, str]:
    exports: dict[str, str] = {}
    if settings.envdir is not None:
        exports["ENVDIR"] = settings.envdir
    if settings.enable_auto_restart:
        exports["ENABLE_AUTO_RESTART"] = "1"
    if settings.kill_old_delay is not None:
        exports["KILL_OLD_DELAY"] = _number_text(settings.kill_old_delay)
    if settings.auto_restart_interval is not None:
        exports["AUTO_RESTART_INTERVAL"] = _number_text(settings.auto_restart_interval)
    return exports


def _perl_true(text: str | None) -> bool:
    return text not in (None, "", "0")


def _float_or(text: str | None, default: float | None) -> float | None:
    if text is None or text == "":
        return default
    try:
        return float(text)
    except ValueError:
        return default


def params_from_env(
    settings: Settings, env: Mapping[str, str], notify_upstream: bool = False
) -> gen.Params:
    """The policy's knobs: the options, overridden by the env (Perl reads %ENV, envdir
    included, at each restart)."""
    if "ENABLE_AUTO_RESTART" in env:
        auto = _perl_true(env["ENABLE_AUTO_RESTART"])
    else:
        auto = settings.enable_auto_restart
    ari = _float_or(env.get("AUTO_RESTART_INTERVAL"), settings.auto_restart_interval)
    return gen.Params(
        interval=settings.interval,
        kill_old_delay=_float_or(env.get("KILL_OLD_DELAY"), settings.kill_old_delay),
        signal_on_hup=settings.signal_on_hup or signal.SIGTERM,
        signal_on_term=settings.signal_on_term or signal.SIGTERM,
        auto_restart=auto,
        auto_restart_interval=ari or DEFAULT_AUTO_RESTART_INTERVAL,
        wait_ready=settings.wait_ready,
        ready_timeout=settings.ready_timeout,
        notify_upstream=notify_upstream,
    )


# --------------------------------------------------------------------------- sockets


class Bound(Record):
    """One listening socket, at the fd the child will find it."""

    __slots__ = ("spec", "sock", "adopted")

    def __init__(
        self, spec: PortSpec, sock: socket.socket, adopted: bool = False
    ) -> None:
        self.spec = spec
        self.sock = sock
        self.adopted = adopted  # passed by systemd (LISTEN_FDS): never unlinked by us

    @property
    def entry(self) -> tuple[str, int]:
        return self.spec.key, self.sock.fileno()


def _address_key(sock: socket.socket) -> str:
    """A socket's address written as a --port/--path key (``127.0.0.1:80``, a path)."""
    addr = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        if isinstance(addr, bytes):
            addr = addr.decode(errors="replace")
        text = str(addr)
        return "@" + text[1:] if text.startswith("\0") else text
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if sock.family == socket.AF_INET6 else f"{host}:{port}"


def _transport(sock: socket.socket) -> Transport:
    if sock.family == socket.AF_UNIX:
        return Transport.UNIX
    return Transport.UDP if sock.type == socket.SOCK_DGRAM else Transport.TCP


def adopt_all(env: Mapping[str, str], taken: Iterable[str]) -> list[Bound]:
    """The sockets systemd passed (LISTEN_FDS, LISTEN_PID = us), kept at their fds.

    Each is exported under its LISTEN_FDNAMES name; under its address when it has no
    name, or the name is not unique or holds ``;`` or ``=`` (SERVER_STARTER_PORT's
    separators).
    """
    try:
        adopted = adopt_systemd(env)
    except OSError as exc:
        raise SupervisorError(
            f"cannot adopt the sockets systemd passed: {exc}"
        ) from None
    named = bool(env.get(ENV_LISTEN_FDNAMES))
    names = [name for name, _ in adopted]
    used = set(taken)
    bound: list[Bound] = []
    for name, sock in adopted:
        good = (
            named
            and name
            and ";" not in name
            and "=" not in name
            and names.count(name) == 1
            and name not in used
        )
        key = name if good else _address_key(sock)
        used.add(key)
        sock.set_inheritable(True)
        spec = PortSpec(key, _transport(sock), fd=sock.fileno())
        bound.append(Bound(spec, sock, adopted=True))
        log.info("adopted socket %s from systemd as %s", sock.fileno(), key)
    return bound


def _reserve_fds(fds: Iterable[int]) -> None:
    """Hold each fixed ``=FD`` number with /dev/null so nothing else is allocated there."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        for fd in fds:
            try:
                os.fstat(fd)
            except OSError:
                os.dup2(devnull, fd, inheritable=False)
    finally:
        os.close(devnull)


def _bind_error(spec: PortSpec, exc: OSError) -> SupervisorError:
    if spec.transport is Transport.UNIX:
        return SupervisorError(f"failed to listen to file {spec.key}: {exc}")
    kind = "udp " if spec.transport is Transport.UDP else ""
    return SupervisorError(f"failed to bind to {kind}{spec.key}: {exc}")


def bind_all(specs: Sequence[PortSpec], backlog: int) -> list[Bound]:
    """Bind every spec in order; move ``=FD`` ones to their number; all inheritable."""
    fixed = [s.fd for s in specs if s.fd is not None]
    seen: set[int] = set()
    for fd in fixed:
        if fd in seen:
            raise SupervisorError(
                f"file descriptor {fd} is requested by two --port values"
            )
        seen.add(fd)
    _reserve_fds(fixed)
    bound: list[Bound] = []
    try:
        for spec in specs:
            if spec.transport is Transport.UNIX and os.path.exists(spec.key):
                log.warning("removing existing socket file:%s", spec.key)
            try:
                sock = bind_spec(spec, backlog)
            except OSError as exc:
                raise _bind_error(spec, exc) from None
            if spec.fd is not None and spec.fd != sock.fileno():
                os.dup2(sock.fileno(), spec.fd, inheritable=True)
                sock.close()
                sock = socket.socket(fileno=spec.fd)
                log.info("socket is duplicated to file descriptor %d", spec.fd)
            sock.set_inheritable(True)
            bound.append(Bound(spec, sock))
    except BaseException:
        for b in bound:
            b.sock.close()
        raise
    return bound


# --------------------------------------------------------------------------- log, daemon


class LogTarget:
    """``--log-file``: a file opened for append, or ``| CMD`` run by the shell."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.proc: subprocess.Popen[bytes] | None = None
        stripped = spec.lstrip()
        try:
            if stripped.startswith("|"):
                # Imported only for a piped log: subprocess brings threading and
                # more (~0.5 MB RSS kept for the supervisor's lifetime).
                import subprocess

                cmd = stripped[1:].strip()
                self.proc = subprocess.Popen(cmd, shell=True, stdin=subprocess.PIPE)
                assert self.proc.stdin is not None
                self.fd = os.dup(self.proc.stdin.fileno())
                self.proc.stdin.close()
            else:
                self.fd = os.open(
                    spec, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644
                )
        except OSError as exc:
            raise SupervisorError(f"failed to open log file {spec!r}: {exc}") from None

    def redirect(self) -> None:
        """Point stdout and stderr at the log (after the sockets are bound, as Perl)."""
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self.fd, 1)
        os.dup2(self.fd, 2)
        os.close(self.fd)


def daemonize(keep_stdin: bool) -> bool:
    """fork, setsid, fork. Returns False in the two parents (they must exit at once)."""
    if os.fork() != 0:
        return False
    os.setsid()
    if os.fork() != 0:
        return False
    if not keep_stdin:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
    return True


# --------------------------------------------------------------------------- the loop


class Supervisor:
    """Carries out the policy's actions and feeds it events until it says Exit."""

    def __init__(
        self,
        settings: Settings,
        command: Sequence[str],
        base_env: Mapping[str, str],
        bound: Sequence[Bound],
        waker: SignalWaker,
        upstream: str | None = None,
    ) -> None:
        self.settings = settings
        self.command = list(command)
        self.base_env = dict(base_env)
        self.bound = list(bound)
        self.waker = waker
        self.port_value = format_server_starter_port(b.entry for b in self.bound)
        self.envdir_values: dict[str, str] = {}
        self.status_written = False
        self.exit: gen.Exit | None = None
        self.state = gen.State()
        # NOTIFY_SOCKET of our own supervisor (systemd), never passed to the children.
        self.upstream = {ENV_NOTIFY_SOCKET: upstream} if upstream else None
        self.listener = NotifyListener() if settings.wait_ready else None
        self.pid_generation: dict[int, int] = {}
        self.selector = selectors.DefaultSelector()
        self.selector.register(waker.fileno(), selectors.EVENT_READ, None)
        self.registered: set[int] = set()

    def reload_envdir(self) -> None:
        """Re-read the envdir (a failure keeps the previous values, with a warning)."""
        path = self.base_env.get("ENVDIR")
        if path:
            try:
                self.envdir_values = load_envdir(path)
            except OSError as exc:
                log.warning(
                    "failed to read envdir %s: %s (keeping previous values)", path, exc
                )
        env = {**self.base_env, **self.envdir_values}
        self.state.params = params_from_env(
            self.settings, env, notify_upstream=self.upstream is not None
        )

    def child_env(self, generation: int) -> dict[str, str]:
        env = {**self.base_env, **self.envdir_values}
        env[ENV_PORT] = self.port_value
        env[ENV_GENERATION] = str(generation)
        for name in (
            ENV_NOTIFY_SOCKET,
            ENV_LISTEN_FDS,
            ENV_LISTEN_PID,
            ENV_LISTEN_FDNAMES,
        ):
            env.pop(name, None)
        return env

    def feed(self, event: gen.Event) -> None:
        """Apply one event and carry out every resulting action (and their follow-ups)."""
        queue: deque[gen.Action] = deque(
            gen.on_event(self.state, event, time.monotonic())
        )
        while queue:
            action = queue.popleft()
            follow = self.perform(action)
            if follow is not None:
                queue.extendleft(
                    reversed(gen.on_event(self.state, follow, time.monotonic()))
                )

    def perform(self, action: gen.Action) -> gen.Event | None:
        """Do one action; a Spawn returns the event reporting its outcome."""
        if isinstance(action, gen.Spawn):
            self.reload_envdir()
            env = self.child_env(action.generation)
            if self.listener is not None:
                try:
                    env[ENV_NOTIFY_SOCKET] = self.listener.open(action.generation)
                except OSError as exc:
                    log.error("cannot create a notify socket: %s", exc)
                self.sync_selector()
            try:
                pid = spawn(
                    self.command,
                    env=env,
                    cwd=self.settings.dir,
                    in_child=self.waker.reset_in_child,
                )
            except ExecError as exc:
                if self.listener is not None:
                    self.listener.close(action.generation)
                    self.sync_selector()
                return gen.SpawnFailed(exc.status, str(exc))
            self.pid_generation[pid] = action.generation
            if self.listener is not None:
                self.listener.bind_pid(action.generation, pid)
            return gen.Spawned(pid)
        if isinstance(action, gen.Signal):
            for pid in action.pids:
                try:
                    os.kill(pid, action.signal)
                except ProcessLookupError:
                    pass
        elif isinstance(action, gen.WriteStatus):
            self.write_status(action.render())
        elif isinstance(action, gen.Log):
            (log.warning if action.warning else log.info)("%s", action.text)
        elif isinstance(action, gen.Exit):
            self.exit = action
        elif isinstance(action, gen.RecordFailure):
            self.record_failure(action)
        elif isinstance(action, gen.NotifyUp):
            self.notify_up(action.message)
        return None

    def record_failure(self, action: gen.RecordFailure) -> None:
        """Write STATUS_FILE.failed (``GEN:PID REASON``), which --restart reads."""
        if not self.settings.status_file:
            return
        path = failure_file(self.settings.status_file)
        try:
            atomic_write(path, action.render())
            self.status_written = True
        except OSError as exc:
            log.error("failed to write %s: %s", path, exc)

    def notify_up(self, message: str) -> None:
        """Tell systemd (our own NOTIFY_SOCKET): READY=1, RELOADING=1, STOPPING=1."""
        if self.upstream is None:
            return
        if message.startswith("READY=1"):
            message += f"\nMAINPID={os.getpid()}"
        elif message.startswith("RELOADING=1"):
            # systemd >= 253 (Type=notify-reload) wants the CLOCK_MONOTONIC time too.
            usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            message += f"\nMONOTONIC_USEC={usec}"
        notify(message, env=self.upstream)

    # ------------------------------------------------------------ notify sockets

    def sync_selector(self) -> None:
        """Register each generation's notify socket (and forget the closed ones)."""
        if self.listener is None:
            return
        socks = self.listener.sockets()
        for generation in list(self.registered):
            if generation not in socks:
                self.registered.discard(generation)
        for key in list(self.selector.get_map().values()):
            if key.data is not None and key.data not in socks:
                self.selector.unregister(key.fileobj)
        for generation, sock in socks.items():
            if generation not in self.registered:
                self.selector.register(sock, selectors.EVENT_READ, generation)
                self.registered.add(generation)

    def read_notifications(self, generations: Iterable[int]) -> None:
        """Turn waiting READY=1 (and friends) into events."""
        if self.listener is None:
            return
        for generation in generations:
            for message in self.listener.receive(generation):
                if message.stopping:
                    log.info("generation %d reports STOPPING=1", generation)
                if "MAINPID" in message.fields:
                    log.info(
                        "generation %d reports MAINPID=%s",
                        generation,
                        message.fields["MAINPID"],
                    )
                if message.ready:
                    self.feed(gen.ReadyReceived(generation))
                if self.exit is not None:
                    return

    def forget(self, pid: int) -> None:
        """A child was reaped: read what it said last, then close its notify socket."""
        generation = self.pid_generation.pop(pid, None)
        if generation is None or self.listener is None:
            return
        self.read_notifications([generation])
        self.listener.close(generation)
        self.sync_selector()

    def write_status(self, text: str) -> None:
        path = self.settings.status_file
        if not path:
            return
        try:
            atomic_write(path, text)
            self.status_written = True
        except OSError as exc:
            log.error("failed to write status file %s: %s", path, exc)

    def loop(self) -> gen.Exit:
        """Run until the policy says Exit."""
        self.reload_envdir()
        self.feed(gen.Start())
        while self.exit is None:
            deadline = gen.next_deadline(self.state)
            timeout = (
                None if deadline is None else max(0.0, deadline - time.monotonic())
            )
            ready = self.selector.select(timeout)
            signals = self.waker.drain()
            self.read_notifications(
                key.data for key, _ in ready if isinstance(key.data, int)
            )
            for status in reap():
                if self.exit is not None:
                    break
                self.forget(status.pid)
                self.feed(gen.ChildExited(status))
            for sig in signals:
                if self.exit is None and sig not in (signal.SIGCHLD, signal.SIGALRM):
                    self.feed(gen.Signalled(sig))
            if self.exit is None:
                self.feed(gen.Tick())
        return self.exit

    def cleanup(self) -> None:
        """Remove the status file (if we wrote it) and the UNIX sockets we created."""
        path = self.settings.status_file
        if path and self.status_written:
            for name in (path, failure_file(path)):
                try:
                    os.unlink(name)
                except OSError:
                    pass
        if self.listener is not None:
            self.listener.close_all()
        self.selector.close()
        for b in self.bound:
            if b.spec.transport is Transport.UNIX and not b.adopted:
                try:
                    os.unlink(b.spec.key)
                except OSError:
                    pass


def _check_status_file(path: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK | os.X_OK):
        raise SupervisorError(
            f"cannot write status file {path!r}: directory {directory!r} is not writable"
        )


def run(settings: Settings, command: Sequence[str]) -> int:
    """Start the superdaemon and run it until it is stopped; return the exit code."""
    log.set_level(settings.log_level)
    log.info("start_server (pid:%d) starting now...", os.getpid())
    base_env = dict(os.environ)
    # systemd's NOTIFY_SOCKET is ours: the children report to us (--wait-ready), and we
    # report upward (READY=1 once a generation serves, RELOADING=1 ... READY=1 per swap).
    upstream = base_env.pop(ENV_NOTIFY_SOCKET, None)
    base_env.update(_option_exports(settings))
    envdir = base_env.get("ENVDIR")
    if envdir:
        try:
            load_envdir(envdir)
        except OSError as exc:
            raise SupervisorError(
                f"cannot read envdir {envdir!r}: {exc.strerror or exc}"
            ) from None
    if settings.status_file:
        _check_status_file(settings.status_file)
    logfile = LogTarget(settings.log_file) if settings.log_file else None
    adopted = adopt_all(os.environ, (s.key for s in settings.specs))
    clash = {b.sock.fileno() for b in adopted} & {
        s.fd for s in settings.specs if s.fd is not None
    }
    if clash:
        raise SupervisorError(
            f"file descriptor {min(clash)} is requested by --port and passed by systemd"
        )
    bound = bind_all(settings.specs, settings.backlog) + adopted
    waker = SignalWaker(HANDLED_SIGNALS)
    if logfile is not None:
        logfile.redirect()
    if settings.daemonize:
        keep_stdin = any(b.sock.fileno() == 0 for b in bound)
        if not daemonize(keep_stdin):
            os._exit(0)
    pidfile = PidFile(settings.pid_file) if settings.pid_file else None
    sup = Supervisor(settings, command, base_env, bound, waker, upstream)
    try:
        if pidfile is not None:
            try:
                pidfile.acquire()
            except PidFileError as exc:
                raise SupervisorError(str(exc)) from None
        result = sup.loop()
    finally:
        sup.cleanup()
        if pidfile is not None:
            pidfile.release()
        waker.close()
    if result.error is not None:
        raise SupervisorError(result.error)
    return result.code
