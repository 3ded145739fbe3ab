"""The sd_notify protocol, server side: one datagram socket per child generation.

start_server gives each generation its own ``NOTIFY_SOCKET``: an
AF_UNIX datagram socket bound in a private directory (mode 0711, so a child that dropped
privileges can still reach the socket by its unguessable name; the socket is 0666).
A message on generation N's socket is about generation N. On Linux the kernel attaches
the sender's credentials (SO_PASSCRED) and a message is accepted only from the
generation's process or one of its descendants (a wrapper that forks the real server);
a sender that already exited is accepted when it ran as our user or the generation's.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from start_server.common.record import Record
from start_server.logline import log

__all__ = [
    "Message",
    "NotifyListener",
    "failure_file",
    "parse_failure",
    "parse_message",
    "read_failure",
]

# struct ucred { pid_t pid; uid_t uid; gid_t gid; }
_UCRED = struct.Struct("iII")
_SO_PASSCRED = getattr(socket, "SO_PASSCRED", None)
_SCM_CREDENTIALS = getattr(socket, "SCM_CREDENTIALS", None)
MAX_DATAGRAM = 4096
# The longest TMPDIR used for the notify directory: it leaves room, within
# MAX_UNIX_PATH, for the directory's and the sockets' names.
_MAX_BASE = 60


class Message(Record):
    """One datagram: its generation, its fields (``READY`` -> ``1``), the sender pid if known."""

    __slots__ = ("generation", "fields", "sender")

    def __init__(
        self, generation: int, fields: dict[str, str], sender: int | None
    ) -> None:
        self.generation = generation
        self.fields = fields
        self.sender = sender

    @property
    def ready(self) -> bool:
        return self.fields.get("READY") == "1"

    @property
    def stopping(self) -> bool:
        return self.fields.get("STOPPING") == "1"


def parse_message(data: bytes) -> dict[str, str]:
    """``KEY=VALUE`` lines (sd_notify's format); lines without ``=`` are skipped."""
    fields: dict[str, str] = {}
    for line in data.decode("utf-8", errors="replace").split("\n"):
        key, sep, value = line.partition("=")
        if sep and key:
            fields[key] = value
    return fields


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    rest = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(rest[1])
    except (IndexError, ValueError):
        return None


def _proc_uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def sender_belongs(sender: int, uid: int, root: int) -> bool:
    """Whether process ``sender`` (running as ``uid``) is ``root`` or descends from it."""
    pid: int | None = sender
    for _ in range(64):
        if pid is None or pid <= 1:
            break
        if pid == root:
            return True
        pid = _ppid(pid)
    if _ppid(sender) is None:
        # Gone already (e.g. systemd-notify run by a shell script): judge by its user.
        return uid in (os.geteuid(), _proc_uid(root))
    return False


class NotifyListener:
    """The per-generation notify sockets. Methods for the supervisor: ``open(gen)`` (returns
    the NOTIFY_SOCKET value), ``bind_pid(gen, pid)``, ``sockets()`` (register them in the
    selector), ``receive(sock)``, ``close(gen)``, ``close_all()``."""

    def __init__(self) -> None:
        # A private directory made by hand: tempfile would pull in shutil, random, bz2
        # and lzma, kept by the long-lived supervisor. os.mkdir fails on an
        # existing name, so a name chosen in advance cannot be hijacked.
        base = os.environ.get("TMPDIR") or "/tmp"
        if len(base) > _MAX_BASE or not os.path.isdir(base):
            base = "/tmp"
        while True:
            name = f"start_server-notify-{os.getpid()}-{os.urandom(4).hex()}"
            self.dir = os.path.join(base, name)
            try:
                os.mkdir(self.dir, 0o700)
                break
            except FileExistsError:
                continue
        os.chmod(self.dir, 0o711)
        self._socks: dict[int, socket.socket] = {}
        self._pids: dict[int, int] = {}

    def path(self, generation: int) -> str:
        return os.path.join(self.dir, f"gen{generation}.sock")

    def open(self, generation: int) -> str:
        """Bind generation's socket; return the value for the child's NOTIFY_SOCKET."""
        self.close(generation)
        path = self.path(generation)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.bind(path)
            os.chmod(path, 0o666)
            sock.setblocking(False)
            if _SO_PASSCRED is not None:
                sock.setsockopt(socket.SOL_SOCKET, _SO_PASSCRED, 1)
        except OSError:
            sock.close()
            raise
        self._socks[generation] = sock
        return path

    def bind_pid(self, generation: int, pid: int) -> None:
        """The generation's process (messages from it or its descendants are accepted)."""
        self._pids[generation] = pid

    def sockets(self) -> dict[int, socket.socket]:
        return dict(self._socks)

    def receive(self, generation: int) -> list[Message]:
        """Every datagram waiting on ``generation``'s socket, filtered by sender."""
        sock = self._socks.get(generation)
        if sock is None:
            return []
        out: list[Message] = []
        while True:
            try:
                if _SCM_CREDENTIALS is not None:
                    data, ancdata, _, _ = sock.recvmsg(
                        MAX_DATAGRAM, socket.CMSG_SPACE(_UCRED.size)
                    )
                else:
                    data, ancdata = sock.recv(MAX_DATAGRAM), []
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    break
                log.warning("notify socket of generation %d: %s", generation, exc)
                break
            sender, uid = self._credentials(ancdata)
            root = self._pids.get(generation)
            if sender is not None and uid is not None and root is not None:
                if not sender_belongs(sender, uid, root):
                    log.warning(
                        "ignoring a notify message for generation %d from pid %d "
                        "(not worker %d or its descendant)",
                        generation,
                        sender,
                        root,
                    )
                    continue
            out.append(Message(generation, parse_message(data), sender))
        return out

    @staticmethod
    def _credentials(
        ancdata: list[tuple[int, int, bytes]],
    ) -> tuple[int | None, int | None]:
        for level, kind, payload in ancdata:
            if (
                level == socket.SOL_SOCKET
                and kind == _SCM_CREDENTIALS
                and len(payload) >= _UCRED.size
            ):
                pid, uid, _ = _UCRED.unpack_from(payload)
                return int(pid), int(uid)
        return None, None

    def close(self, generation: int) -> None:
        """Forget a generation: close and unlink its socket."""
        self._pids.pop(generation, None)
        sock = self._socks.pop(generation, None)
        if sock is None:
            return
        sock.close()
        try:
            os.unlink(self.path(generation))
        except OSError:
            pass

    def close_all(self) -> None:
        for generation in list(self._socks):
            self.close(generation)
        try:
            os.rmdir(self.dir)
        except OSError:
            pass


# --------------------------------------------------------------------------- failures

FAILURE_SUFFIX = ".failed"


def failure_file(status_file: str) -> str:
    """Where start_server records the last generation it rolled back (next to the status file)."""
    return status_file + FAILURE_SUFFIX


def parse_failure(text: str) -> tuple[int, int, str] | None:
    """``(generation, pid, reason)`` from the failure file's ``GEN:PID REASON`` line."""
    head, _, reason = text.strip().partition(" ")
    gen_text, _, pid_text = head.partition(":")
    if not (gen_text.isdigit() and pid_text.isdigit()):
        return None
    return int(gen_text), int(pid_text), reason


def read_failure(status_file: str) -> tuple[int, int, str] | None:
    """The last recorded failure, or None (no file, or unreadable)."""
    try:
        with open(failure_file(status_file), encoding="utf-8", errors="replace") as f:
            return parse_failure(f.read())
    except OSError:
        return None
