"""Network-namespace sandboxes for TAP devices: what tests, the CLI and benchmarks build on.

A :class:`Namespace` is a fresh Linux network namespace (``ip netns add``): it has only its own
loopback interface and no route anywhere, so whatever runs in it cannot reach the machine's
network. :func:`open_tap_in_namespace` creates a TAP device, moves the kernel's side of it into
such a namespace and gives that side addresses from the benchmarking range 198.18.0.0/15
(RFC 2544) and the unique-local range fd00::/8 (RFC 4193) only. netstack holds the other side
of the cable through the :class:`~netstack.link.tap.TapLink`, so the kernel in the namespace
is netstack's peer, and the two can talk to no one else.

Deleting a namespace does not end the processes in it, so :meth:`Namespace.delete` kills them
first. Everything here is synchronous (short ``ip`` commands) and needs root, or
``CAP_NET_ADMIN`` and ``CAP_SYS_ADMIN``.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import ipaddress
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from .errors import LinkError, NetstackError
from .link.base import MacAddress
from .link.offload import NO_OFFLOADS, Offloads
from .link.tap import TUN_PATH, TapLink

__all__ = [
    "SAFE_IPV4",
    "SAFE_IPV6",
    "Namespace",
    "NamespaceError",
    "UserNamespace",
    "have_net_admin",
    "open_tap_in_namespace",
    "open_tap_behind_router",
    "open_tap_in_process",
    "open_tap_in_user_namespace",
    "rootless_tap_unavailable_reason",
    "router_drops",
    "tap_unavailable_reason",
]

log = logging.getLogger(__name__)

#: RFC 2544's benchmarking range: never routed on the Internet.
SAFE_IPV4 = ipaddress.IPv4Network("198.18.0.0/15")
#: RFC 4193's locally assigned unique-local range.
SAFE_IPV6 = ipaddress.IPv6Network("fd00::/8")

#: Seconds an ``ip`` command may take before it is killed.
_IP_TIMEOUT = 10.0
#: How long :meth:`Namespace.delete` waits for killed processes to leave the namespace.
_KILL_WAIT = 3.0

# Names unique within this process; the pid makes them unique across concurrent test runs.
_counter = itertools.count(1)

# From linux/sched.h: unshare() / setns() flags for network and user namespaces.
_CLONE_NEWNET = 0x40000000
_CLONE_NEWUSER = 0x10000000


class NamespaceError(NetstackError, RuntimeError):
    """A sandbox could not be built: ``ip`` is missing or one of its commands failed."""


def _ip_binary() -> str:
    # sbin is often missing from PATH outside a root login shell.
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    found = shutil.which("ip", path=path)
    if found is None:
        raise NamespaceError("the `ip` command (iproute2) is missing; install iproute2")
    return found


def _run_ip(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [_ip_binary(), *args]
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=_IP_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise NamespaceError(f"`{' '.join(argv)}` took longer than {_IP_TIMEOUT} s") from exc
    if check and proc.returncode != 0:
        detail = proc.stderr.strip() or f"exit status {proc.returncode}"
        raise NamespaceError(f"`{' '.join(argv)}` failed: {detail}")
    return proc


def _validate_ns_name(name: str) -> None:
    # The name becomes a file in /run/netns and an argument to ip.
    if not name or name in (".", "..") or "/" in name or "\0" in name or name.startswith("-"):
        raise ValueError(f"not a valid namespace name: {name!r}")
    if any(c.isspace() for c in name) or len(name) > 200:
        raise ValueError(f"not a valid namespace name: {name!r}")


class Namespace:
    """A network namespace made by :meth:`create`, deleted by :meth:`delete`.

    Use it as a context manager so that it is deleted, with every process in it, even when
    the body fails.
    """

    def __init__(self, name: str) -> None:
        """Refer to an existing namespace; use :meth:`create` to make a new one.

        Args:
            name: the namespace's name (as in ``ip netns list``).

        Raises:
            ValueError: ``name`` cannot be a namespace name.
        """
        _validate_ns_name(name)
        self.name = name
        self._procs: list[subprocess.Popen[Any]] = []
        self._deleted = False

    @classmethod
    def create(cls, name: str | None = None) -> Namespace:
        """Make a new network namespace with its loopback interface up.

        Args:
            name: the name; when ``None``, a name unique to this process and call
                (``netstack-PID-N``).

        Returns:
            The namespace.

        Raises:
            ValueError: ``name`` cannot be a namespace name.
            NamespaceError: ``ip`` is missing, or the namespace cannot be made (it exists
                already, or this process lacks the privileges).
        """
        if name is not None:
            _validate_ns_name(name)
        # A name left behind by a killed earlier run with the same pid is skipped.
        attempts = 1 if name is not None else 5
        for attempt in range(attempts):
            candidate = name if name is not None else f"netstack-{os.getpid()}-{next(_counter)}"
            proc = _run_ip(["netns", "add", candidate], check=False)
            if proc.returncode == 0:
                break
            if attempt == attempts - 1 or "exists" not in proc.stderr:
                raise NamespaceError(
                    f"cannot create network namespace {candidate!r}: {proc.stderr.strip()}"
                )
        ns = cls(candidate)
        try:
            ns.ip("link", "set", "lo", "up")
        except BaseException:
            ns.delete()
            raise
        return ns

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Move the calling thread into this namespace for the ``with`` block (namespaces
        belong to threads in Linux): the sockets and TAP devices made meanwhile belong to
        it, and stay there afterwards; programs started meanwhile run in it. A user-mode
        gateway whose "host" is this namespace runs its event loop inside the block.

        Raises:
            NamespaceError: the namespace cannot be entered (no privileges, deleted).
        """
        if self._deleted:
            raise NamespaceError(f"namespace {self.name!r} has been deleted")
        libc = ctypes.CDLL(None, use_errno=True)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            try:
                target = os.open(f"/run/netns/{self.name}", os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise NamespaceError(f"cannot open namespace {self.name!r}: {exc}") from None
            try:
                if libc.setns(target, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise NamespaceError(f"cannot enter {self.name!r}: {os.strerror(err)}")
            finally:
                os.close(target)
            try:
                yield
            finally:
                if libc.setns(home, _CLONE_NEWNET) != 0:  # pragma: no cover
                    err = ctypes.get_errno()
                    raise NamespaceError(f"cannot leave {self.name!r}: {os.strerror(err)}")
        finally:
            os.close(home)

    # -- running things inside ---------------------------------------------------------------
    def _exec_argv(self, argv: tuple[str, ...]) -> list[str]:
        if not argv:
            raise ValueError("no command given")
        if self._deleted:
            raise NamespaceError(f"namespace {self.name!r} has been deleted")
        return [_ip_binary(), "netns", "exec", self.name, *argv]

    def run(
        self, *argv: str, check: bool = True, timeout: float = 30.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace and wait for it.

        Args:
            argv: the command and its arguments.
            check: raise if the command exits with a non-zero status.
            timeout: seconds after which the command is killed.
            input: text for its standard input (none when ``None``).

        Returns:
            The finished process, with ``stdout`` and ``stderr`` as text.

        Raises:
            subprocess.CalledProcessError: ``check`` and a non-zero exit status.
            subprocess.TimeoutExpired: the command ran longer than ``timeout``.
            NamespaceError: ``ip`` is missing or the namespace has been deleted.
        """
        return subprocess.run(
            self._exec_argv(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    async def arun(
        self, *argv: str, check: bool = True, timeout: float = 30.0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """:meth:`run` for asyncio: the same arguments, result and errors, awaited without
        blocking the event loop (so that a netstack stack on the same loop can answer the
        command). The output is decoded as UTF-8, undecodable bytes replaced; on timeout, or
        when the caller is cancelled, the command is killed and waited for.
        """
        import asyncio

        args = self._exec_argv(argv)
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(timeout):
                out, err = await proc.communicate(input.encode() if input is not None else None)
        except BaseException as exc:  # the timeout, or the caller cancelled: no orphan left
            if proc.returncode is None:
                proc.kill()
                await asyncio.shield(proc.wait())
            if isinstance(exc, TimeoutError):
                raise subprocess.TimeoutExpired(args, timeout) from None
            raise
        assert proc.returncode is not None
        result = subprocess.CompletedProcess(
            args, proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
        )
        if check:
            result.check_returncode()
        return result

    def popen(self, *argv: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a command inside the namespace without waiting for it.

        The process is killed by :meth:`delete` if it is still running then.

        Args:
            argv: the command and its arguments.
            kwargs: passed on to :class:`subprocess.Popen` (``stdout``, ``text``, ...).

        Returns:
            The running process.

        Raises:
            NamespaceError: ``ip`` is missing or the namespace has been deleted.
        """
        proc: subprocess.Popen[Any] = subprocess.Popen(self._exec_argv(argv), **kwargs)
        self._procs.append(proc)
        return proc

    def ip(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``ip -n NAME ARGS...``: configure the namespace's interfaces and routes.

        Args:
            args: the ``ip`` arguments, e.g. ``"addr", "add", "198.18.0.1/24", "dev", "tap0"``.

        Returns:
            The finished ``ip`` process.

        Raises:
            NamespaceError: ``ip`` is missing or the command failed (its error is in the
                message).
        """
        return _run_ip(["-n", self.name, *args])

    def move_link(self, devname: str) -> None:
        """Move the interface ``devname`` from this process's namespace into this one.

        Args:
            devname: the interface's name.

        Raises:
            NamespaceError: the interface does not exist or cannot be moved.
        """
        _run_ip(["link", "set", "dev", devname, "netns", self.name])

    def pids(self) -> list[int]:
        """The processes inside the namespace now.

        Returns:
            Their process ids (empty once the namespace is deleted).
        """
        if self._deleted:
            return []
        try:
            proc = _run_ip(["netns", "pids", self.name], check=False)
        except NamespaceError:
            return []
        return [int(word) for word in proc.stdout.split() if word.isdigit()]

    def exists(self) -> bool:
        """Whether ``ip netns list`` still shows this namespace.

        Returns:
            True while the namespace exists.
        """
        proc = _run_ip(["netns", "list"], check=False)
        return any(line.split(" ", 1)[0] == self.name for line in proc.stdout.splitlines())

    # -- deleting ---------------------------------------------------------------------------
    def delete(self) -> None:
        """Kill every process in the namespace, then delete it. Safe to call more than once;
        never raises (problems are logged), because it runs in finalizers."""
        if self._deleted:
            return
        try:
            self._kill_all()
        except Exception:
            log.exception("killing the processes of namespace %r failed", self.name)
        try:
            proc = _run_ip(["netns", "del", self.name], check=False)
            if proc.returncode != 0 and self.exists():
                log.warning("cannot delete namespace %r: %s", self.name, proc.stderr.strip())
        except Exception:
            log.exception("deleting namespace %r failed", self.name)
        self._deleted = True

    def _kill_all(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self._procs:
            try:
                proc.wait(timeout=_KILL_WAIT)
            except subprocess.TimeoutExpired:
                log.warning("process %d in namespace %r survived SIGKILL", proc.pid, self.name)
        self._procs.clear()
        # Processes started any other way (or children of ours) are found by the kernel's
        # own list; they are not our children, so poll until they are gone.
        deadline = time.monotonic() + _KILL_WAIT
        me = os.getpid()
        while True:
            pids = [pid for pid in self.pids() if pid not in (me, 1)]
            if not pids:
                return
            if time.monotonic() > deadline:
                log.warning("processes %s in namespace %r would not die", pids, self.name)
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    def __enter__(self) -> Namespace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.delete()

    def __repr__(self) -> str:
        state = " deleted" if self._deleted else ""
        return f"<Namespace {self.name}{state}>"


class UserNamespace(Namespace):
    """A user and network namespace that this process's user owns, for work without root:
    ``unshare --user --map-root-user --net`` makes them and its process (``sleep``) holds them,
    as slirp4netns's rootless containers are held; commands run inside with ``nsenter``, as
    the namespace's root (the owner of a user namespace has every capability in it). It has no
    name in ``ip netns list``; :meth:`delete` kills its processes, and the namespaces go with
    the last of them. Make one with :meth:`create`.
    """

    def __init__(self, holder: subprocess.Popen[bytes]) -> None:
        """Refer to the namespaces ``holder`` (``unshare ... sleep``) lives in; use
        :meth:`create` to make new ones."""
        self.holder = holder
        self.pid = holder.pid
        self.name = f"userns-{holder.pid}"
        self._procs = []
        self._deleted = False

    @classmethod
    def create(cls, name: str | None = None) -> UserNamespace:
        """Make a new user and network namespace, the loopback interface up.

        Raises:
            NamespaceError: ``unshare`` or ``nsenter`` is missing, or the kernel refused
                (unprivileged user namespaces switched off).
        """
        del name  # user namespaces have no names
        for program in ("unshare", "nsenter"):
            if shutil.which(program) is None:
                raise NamespaceError(f"{program} is missing (Debian: util-linux)")
        own = os.stat("/proc/self/ns/net").st_ino
        holder = subprocess.Popen(
            ["unshare", "--user", "--map-root-user", "--net", "sleep", "infinity"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + _IP_TIMEOUT
        while True:  # until unshare has made the namespaces and become sleep
            if holder.poll() is not None:
                err = holder.stderr.read().decode(errors="replace").strip() if holder.stderr else ""
                raise NamespaceError(f"unshare --user --net failed: {err or holder.returncode}")
            try:
                if os.stat(f"/proc/{holder.pid}/ns/net").st_ino != own:
                    break
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                holder.kill()
                holder.wait()
                raise NamespaceError("unshare --user --net did not start")
            time.sleep(0.005)
        ns = cls(holder)
        try:
            ns.run("ip", "link", "set", "lo", "up")
        except (OSError, subprocess.SubprocessError) as exc:
            ns.delete()
            raise NamespaceError(f"cannot configure the new user namespace: {exc}") from exc
        return ns

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Not possible: a thread of a multi-threaded process cannot enter a user namespace.

        Raises:
            NamespaceError: always.
        """
        raise NamespaceError("a thread of a multi-threaded process cannot enter a user namespace")
        yield  # pragma: no cover

    def _exec_argv(self, argv: tuple[str, ...]) -> list[str]:
        if not argv:
            raise ValueError("no command given")
        if self._deleted:
            raise NamespaceError(f"namespace {self.name!r} has been deleted")
        # --preserve-credentials: the user keeps its ids, which the namespace maps to root
        # (setgroups is denied in a namespace an unprivileged user made).
        return ["nsenter", "--target", str(self.pid), "--user", "--net", "--preserve-credentials",
                *argv]  # fmt: skip

    def ip(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``ip ARGS...`` inside."""
        return self.run("ip", *args, timeout=_IP_TIMEOUT)

    def move_link(self, devname: str) -> None:
        raise NamespaceError("devices cannot be moved into a user namespace without privilege")

    def pids(self) -> list[int]:
        return [self.pid] if self.holder.poll() is None else []

    def exists(self) -> bool:
        return not self._deleted and self.holder.poll() is None

    def delete(self) -> None:
        """Kill the processes started in it and its holder; the namespaces (and a TAP device
        in them) go with the last. Safe to call more than once; never raises."""
        if self._deleted:
            return
        self._deleted = True
        for proc in [*self._procs, self.holder]:
            try:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=_KILL_WAIT)
            except Exception:
                log.exception("stopping process %d of %r failed", proc.pid, self.name)
        if self.holder.stderr is not None:
            self.holder.stderr.close()
        self._procs.clear()

    def __repr__(self) -> str:
        state = " deleted" if self._deleted else ""
        return f"<UserNamespace of process {self.pid}{state}>"


def open_tap_in_user_namespace(
    ns: UserNamespace,
    *,
    kernel_ipv4: str | None = "198.18.0.1/24",
    kernel_ipv6: str | None = "fd00:198:18::1/64",
    mtu: int | None = None,
    offload: bool | None = None,
) -> TapLink:
    """:func:`open_tap_in_namespace` without root: a TAP device in ``ns`` (made there by
    :func:`open_tap_in_process`'s helper and passed out), its kernel side addressed as given
    (198.18.0.0/15 and fd00::/8 only).

    Raises:
        ValueError: an address outside the safe ranges.
        NamespaceError: the device cannot be made or configured.
    """
    ipv4 = _check_safe(kernel_ipv4, SAFE_IPV4) if kernel_ipv4 else None
    ipv6 = _check_safe(kernel_ipv6, SAFE_IPV6) if kernel_ipv6 else None
    link = open_tap_in_process(ns.pid, mtu=mtu, offload=offload, ipv4=ipv4)
    try:
        if ipv6:
            ns.ip("-6", "addr", "add", ipv6, "dev", link.name, "nodad")
    except (OSError, subprocess.SubprocessError) as exc:
        link.close()
        raise NamespaceError(f"cannot configure {link.name} in {ns!r}: {exc}") from exc
    return link


@functools.cache
def rootless_tap_unavailable_reason() -> str | None:
    """Why TAP sandboxes cannot be built without root (:class:`UserNamespace` and
    :func:`open_tap_in_user_namespace`), or ``None`` when they can: a real user namespace
    with a TAP device is made once and removed. The answer is cached.
    """
    try:
        ns = UserNamespace.create()
        try:
            open_tap_in_user_namespace(ns, kernel_ipv6=None).close()
        finally:
            ns.delete()
    except (NamespaceError, LinkError, OSError) as exc:
        return f"no TAP device in a user namespace either: {exc}"
    return None


def _check_safe(address: str, network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    try:
        iface = ipaddress.ip_interface(address)
    except ValueError:
        raise ValueError(f"not an address/prefix: {address!r}") from None
    net = iface.network
    if isinstance(net, ipaddress.IPv4Network) and isinstance(network, ipaddress.IPv4Network):
        safe = net.subnet_of(network)
    elif isinstance(net, ipaddress.IPv6Network) and isinstance(network, ipaddress.IPv6Network):
        safe = net.subnet_of(network)
    else:
        safe = False
    if not safe:
        raise ValueError(
            f"{address} is outside {network}: sandboxes only use 198.18.0.0/15 and fd00::/8, "
            "so that no traffic can leave the machine"
        )
    return str(iface)


def open_tap_in_namespace(
    ns: Namespace,
    *,
    kernel_ipv4: str | None = "198.18.0.1/24",
    kernel_ipv6: str | None = "fd00:198:18::1/64",
    dev: str | None = None,
    mtu: int | None = None,
    mac: MacAddress | None = None,
    offload: bool | None = None,
    gso: bool = True,
) -> TapLink:
    """Create a TAP device whose kernel side lives in ``ns``, configured and up.

    The kernel in ``ns`` gets ``kernel_ipv4`` and ``kernel_ipv6`` (without duplicate address
    detection, so the address works at once) and becomes netstack's peer; netstack uses the
    returned link, e.g. with 198.18.0.2/24.

    Args:
        ns: the namespace for the kernel's side.
        kernel_ipv4: the kernel's IPv4 address/prefix, inside 198.18.0.0/15; ``None`` for
            none.
        kernel_ipv6: the kernel's IPv6 address/prefix, inside fd00::/8; ``None`` for only the
            link-local address the kernel forms by itself.
        dev: the device name (15 characters at most); derived from the pid when ``None``.
        mtu: the device's MTU; the kernel's default (1500) when ``None``.
        mac: netstack's MAC address on the link; random when ``None``.
        offload: the link's offloads, as :meth:`TapLink.open` takes them (``None``: on where
            supported unless ``NETSTACK_OFFLOAD=0``).
        gso: software segmentation without offloads, as :meth:`TapLink.open` takes it.

    Returns:
        The link, not yet listening; disconnecting it deletes the device.

    Raises:
        ValueError: an address is outside the safe ranges, or a name or the MTU is invalid.
        LinkError: the TAP device cannot be opened (no privileges, no ``/dev/net/tun``).
        NamespaceError: the device cannot be moved or configured.
    """
    # Checked before anything is created, so a wrong address never reaches the kernel.
    v4 = _check_safe(kernel_ipv4, SAFE_IPV4) if kernel_ipv4 is not None else None
    v6 = _check_safe(kernel_ipv6, SAFE_IPV6) if kernel_ipv6 is not None else None
    if dev is None:
        dev = f"nst{os.getpid()}t{next(_counter)}"
    link = TapLink.open(dev, mtu=mtu, mac=mac, offload=offload, gso=gso)
    try:
        ns.move_link(link.name)
        if v4 is not None:
            ns.ip("addr", "add", v4, "dev", link.name)
        if v6 is not None:
            ns.ip("-6", "addr", "add", v6, "dev", link.name, "nodad")
        ns.ip("link", "set", "dev", link.name, "up")
    except BaseException:
        link.close()  # the kernel deletes the device with its last descriptor
        raise
    return link


def _probe_tap() -> str | None:
    """Try to create a TAP device where nothing can see it; return why it failed, if so.

    The probe runs in a thread that first moves itself into a new, private network namespace
    (namespaces belong to threads in Linux), so the test device never appears in this
    process's namespace, and the kernel frees both when the thread ends.
    """
    result: list[str | None] = []

    def probe() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(_CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            result.append(
                f"cannot create a network namespace: {os.strerror(err)} "
                "(needs root: CAP_SYS_ADMIN for namespaces, CAP_NET_ADMIN for TAP devices)"
            )
            return
        try:
            TapLink.open("nstprobe%d").close()
        except (LinkError, ValueError) as exc:
            result.append(str(exc))
            return
        result.append(None)

    thread = threading.Thread(target=probe, name="netstack-tap-probe", daemon=True)
    thread.start()
    thread.join(timeout=_IP_TIMEOUT)
    if not result:
        return "the TAP probe did not finish"
    return result[0]


@functools.cache
def tap_unavailable_reason() -> str | None:
    """Why TAP sandboxes cannot be built here, or ``None`` when they can.

    Checks for Linux, ``/dev/net/tun``, the ``ip`` command, and then really creates a TAP
    device inside a private, throwaway network namespace. The answer is cached.

    Returns:
        A sentence naming the missing piece, or ``None``.
    """
    if not sys.platform.startswith("linux"):
        return f"TAP devices need Linux, this is {sys.platform}"
    if not os.path.exists(TUN_PATH):
        return f"{TUN_PATH} missing (load the tun module: `modprobe tun`)"
    try:
        _ip_binary()
    except NamespaceError as exc:
        return str(exc)
    return _probe_tap()


def have_net_admin() -> bool:
    """Whether this process can open TAP devices and put them in network namespaces.

    Returns:
        True when :func:`open_tap_in_namespace` can work (see :func:`tap_unavailable_reason`).
    """
    return tap_unavailable_reason() is None


def open_tap_in_process(
    pid: int,
    *,
    name: str = "tap0",
    mtu: int | None = None,
    offload: bool | None = None,
    mac: MacAddress | None = None,
    ipv4: str | None = None,
    gateway: str | None = None,
) -> TapLink:
    """Create a TAP device in the user and network namespaces of process ``pid`` and return
    a link on it, as slirp4netns does for rootless containers: a helper process enters the
    namespaces (``setns``; a user namespace's owner has every capability inside it, so no
    privilege is needed when the caller's user owns that namespace), creates and configures
    the device there, and passes its descriptor back over a unix socket (``SCM_RIGHTS``). The
    device lives in ``pid``'s network namespace; netstack holds its other end. The helper is
    a child of ``fork()`` (single-threaded, as entering a user namespace requires) that makes
    only system calls and runs ``ip``.

    Args:
        pid: a process in the guest's namespaces (``unshare --user --net``'s, a container's).
        name: the device's name there.
        mtu: its MTU (default 1500).
        offload: the link's offloads, as :meth:`TapLink.open` takes them.
        mac: netstack's MAC address on the link.
        ipv4: an address/prefix for the guest's side ("configure"), or None to leave it to
            the guest (DHCP); ``gateway``: its default route then.

    Returns:
        The link, not yet listening.

    Raises:
        NamespaceError: the namespaces cannot be entered, or the device made or configured
            (the helper's message is included).
    """
    request = {"pid": pid, "name": name, "mtu": mtu, "offload": offload, "ipv4": ipv4,
               "gateway": gateway}  # fmt: skip
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with parent, child:
        # A forked child: entering a user namespace needs a single-threaded process, which
        # the child of fork() is; it makes only system calls and runs ip, then exits.
        helper = os.fork()
        if helper == 0:  # pragma: no cover (the child; coverage does not follow it)
            status = 1
            try:
                parent.close()
                _tap_helper(request, child)
                status = 0
            except BaseException as exc:
                with contextlib.suppress(BaseException):
                    child.sendall(json.dumps({"error": str(exc) or repr(exc)}).encode())
            finally:
                os._exit(status)
        child.close()
        parent.settimeout(_IP_TIMEOUT)
        try:
            data, fds, _, _ = socket.recv_fds(parent, 4096, 1)
        except TimeoutError:
            data, fds = b'{"error": "the helper did not answer"}', []
        finally:
            _reap(helper)
    info = json.loads(data or b'{"error": "the helper ended without a word"}')
    if "error" in info or not fds:
        for fd in fds:
            os.close(fd)
        raise NamespaceError(
            f"cannot make a TAP device in the namespaces of process {pid}: "
            f"{info.get('error', 'no descriptor passed')}"
        )
    fd = fds[0]
    try:
        os.set_blocking(fd, False)
        offloads = Offloads(**info["offloads"]) if info["offloads"] else NO_OFFLOADS
        return TapLink(fd, info["name"], mac=mac, mtu=info["mtu"], offloads=offloads)
    except BaseException:
        os.close(fd)
        raise


def _reap(pid: int) -> None:
    """Wait for the helper (it exits right after answering; killed if it hangs)."""
    deadline = time.monotonic() + _IP_TIMEOUT
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return
        time.sleep(0.005)


def _tap_helper(request: dict[str, Any], sock: socket.socket) -> None:
    """In the forked helper of :func:`open_tap_in_process`: enter the namespaces, make and
    configure the device, pass its descriptor and what the link needs to know."""
    pid = int(request["pid"])
    libc = ctypes.CDLL(None, use_errno=True)
    for kind, flag in (("user", _CLONE_NEWUSER), ("net", _CLONE_NEWNET)):
        target = f"/proc/{pid}/ns/{kind}"
        if os.stat(target).st_ino == os.stat(f"/proc/self/ns/{kind}").st_ino:
            continue  # already there (entering one's own user namespace is an error)
        fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, flag) != 0:
                err = ctypes.get_errno()
                raise NamespaceError(f"cannot enter its {kind} namespace: {os.strerror(err)}")
        finally:
            os.close(fd)
    link = TapLink.open(request["name"], mtu=request["mtu"], offload=request["offload"])
    dev = link.name
    steps = [["link", "set", "dev", dev, "up"], ["link", "set", "lo", "up"]]
    if request["ipv4"]:
        steps.insert(0, ["addr", "add", _check_safe_any(request["ipv4"]), "dev", dev])
        if request["gateway"]:
            steps.append(["route", "add", "default", "via", request["gateway"]])
    for step in steps:
        _run_ip(step)
    offloads = link.offloads
    info = {
        "name": dev,
        "mtu": link.mtu,
        "offloads": None if offloads == NO_OFFLOADS else dataclasses.asdict(offloads),
    }
    socket.send_fds(sock, [json.dumps(info).encode()], [link.fileno()])


def _check_safe_any(address: str) -> str:
    try:
        return str(ipaddress.ip_interface(address))
    except ValueError:
        raise ValueError(f"not an address/prefix: {address!r}") from None


def open_tap_behind_router(
    router: Namespace,
    far: Namespace,
    *,
    loss_percent: int = 0,
    dev: str | None = None,
    offload: bool | None = None,
    gso: bool = True,
) -> TapLink:
    """netstack on a TAP device whose kernel side is a router (namespace ``router``,
    198.18.0.1/24) that forwards to the kernel in ``far`` (198.18.1.2/24, over a veth pair
    from 198.18.1.1/24), optionally losing ``loss_percent`` % of the forwarded packets at
    random. netstack takes 198.18.0.2/24 with gateway 198.18.0.1.

    The loss is real network loss for both ends: an nftables ``numgen random`` drop
    (``table inet netstack_loss``, counter ``dropped``) in the router's forward hook for
    what ``far`` sends, and in ``far``'s prerouting hook for what netstack sends; neither in
    the sender's own output, where the kernel would see a local error and retry at once,
    nor ``netem``, which this kind of machine may not have. netstack's packets are dropped
    only after the router's veth cut them to the MTU: a TAP link with offloads hands the
    kernel super-segments of up to 64 KiB, which the router forwards whole, so a rule on
    its forward hook would drop 45 segments at once, and a short transfer might lose none.

    Args:
        router: the namespace that forwards (an empty one, e.g. from :meth:`Namespace.create`).
        far: the namespace of the far kernel end.
        loss_percent: 0 to 100.
        dev: the TAP device's name (derived from the pid when ``None``).
        offload: the link's offloads, as :meth:`TapLink.open` takes them.
        gso: software segmentation without offloads, as :meth:`TapLink.open` takes it.

    Returns:
        The link (not yet listening).

    Raises:
        ValueError: ``loss_percent`` out of range.
        NamespaceError: a command failed (``nft`` missing, say).
    """
    if not 0 <= loss_percent <= 100:
        raise ValueError(f"loss_percent must be 0..100, not {loss_percent}")
    link = open_tap_in_namespace(
        router,
        kernel_ipv4="198.18.0.1/24",
        kernel_ipv6=None,
        dev=dev,
        offload=offload,
        gso=gso,
    )
    try:
        n = next(_counter)
        near, far_dev = f"nsr{os.getpid()}a{n}"[:15], f"nsr{os.getpid()}b{n}"[:15]
        router.ip("link", "add", near, "type", "veth", "peer", "name", far_dev, "netns", far.name)
        router.ip("addr", "add", _check_safe("198.18.1.1/24", SAFE_IPV4), "dev", near)
        far.ip("addr", "add", _check_safe("198.18.1.2/24", SAFE_IPV4), "dev", far_dev)
        # Every packet MTU-sized, as on the TAP device: the loss rule then drops segments,
        # not 64 KiB offload bursts.
        router.ip("link", "set", near, "gso_max_segs", "1")
        far.ip("link", "set", far_dev, "gso_max_segs", "1")
        # gso_max_segs misses what a TAP link with offloads hands the kernel (tun marks its
        # super-segments DODGY, their segment count unknown until cut): with TSO off the
        # router's veth cuts every one on the way out, before far's loss rule sees it
        # (best effort: without ethtool the rule may drop a super-segment whole).
        router.run("ethtool", "-K", near, "tso", "off", check=False)
        router.ip("link", "set", near, "up")
        far.ip("link", "set", far_dev, "up")
        far.ip("route", "add", "default", "via", "198.18.1.1")
        router.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        if loss_percent:
            for ns, hook, dev_in in ((router, "forward", near), (far, "prerouting", far_dev)):
                rules = (
                    "table inet netstack_loss {\n"
                    "  counter dropped { }\n"
                    "  chain loss {\n"
                    f"    type filter hook {hook} priority 0; policy accept;\n"
                    f'    iifname "{dev_in}" numgen random mod 100 < {loss_percent}'
                    " counter name dropped drop\n"
                    "  }\n"
                    "}\n"
                )
                proc = ns.run("nft", "-f", "-", input=rules, check=False)
                if proc.returncode != 0:
                    raise NamespaceError(f"nft failed: {proc.stderr.strip()}")
    except BaseException:
        link.close()
        raise
    return link


def router_drops(router: Namespace, far: Namespace | None = None) -> int:
    """Packets the loss rules of :func:`open_tap_behind_router` dropped so far: the
    router's (what ``far`` sent), and with ``far`` also ``far``'s (what netstack sent)."""
    return loss_counters(router, *((far,) if far is not None else ()))[0]


def loss_counters(*namespaces: Namespace) -> tuple[int, int]:
    """(packets, bytes) the loss rules of :func:`open_tap_behind_router` in ``namespaces``
    dropped so far."""
    packets = size = 0
    for ns in namespaces:
        proc = ns.run("nft", "-j", "list", "counter", "inet", "netstack_loss", "dropped")
        for item in json.loads(proc.stdout).get("nftables", []):
            counter = item.get("counter")
            if counter is not None:
                packets += int(counter.get("packets", 0))
                size += int(counter.get("bytes", 0))
    return packets, size
