"""Start a real Redis Cluster of Debian `redis-server` processes on free loopback ports."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Literal

from devtools.redis_server import RedisServer
from llmemo.errors import ConfigError, require

if TYPE_CHECKING:
    from redis.cluster import ClusterNode

SLOTS = 16384
BUS_PORT_OFFSET = 10000  # a node's cluster bus listens on its port + 10000
HOST = "127.0.0.1"


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def free_cluster_port(taken: Collection[int] = ()) -> int:
    """A free port whose cluster bus port (+10000, at most 65535) is free too.

    Both are picked below the kernel's ephemeral range when there is room, so that no outgoing
    connection can grab one between this check and the server binding it.
    """
    low, _ = _ephemeral_range()
    top = low - 1 - BUS_PORT_OFFSET
    first, last = (10000, top) if top - 10000 >= 1000 else (1024, 65535 - BUS_PORT_OFFSET)
    rng = random.Random()
    for _ in range(2000):
        port = rng.randint(first, last)
        bus = port + BUS_PORT_OFFSET
        if port in taken or bus in taken:
            continue
        if _bindable(port) and _bindable(bus):
            return port
    raise RuntimeError("no free pair of ports (port, port + 10000) on 127.0.0.1")


@dataclass(frozen=True)
class ClusterNodeInfo:
    """One line of `CLUSTER NODES`: a node as some node of the cluster sees it."""

    id: str
    port: int
    flags: frozenset[str]
    primary_id: str | None
    slots: tuple[str, ...]

    @property
    def is_primary(self) -> bool:
        return "master" in self.flags

    @property
    def failing(self) -> bool:
        return bool(self.flags & {"fail", "fail?", "handshake", "noaddr"})


def parse_cluster_nodes(text: str) -> list[ClusterNodeInfo]:
    """Parse the `CLUSTER NODES` reply (slots under migration, `[...]`, are left out)."""
    nodes = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@", 1)[0]
        nodes.append(
            ClusterNodeInfo(
                id=fields[0],
                port=int(address.rsplit(":", 1)[1]),
                flags=frozenset(fields[2].split(",")),
                primary_id=None if fields[3] == "-" else fields[3],
                slots=tuple(s for s in fields[8:] if not s.startswith("[")),
            )
        )
    return nodes


def parse_info(text: str) -> dict[str, str]:
    """Parse an `INFO` or `CLUSTER INFO` reply into its `name: value` pairs."""
    pairs = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {name.strip(): value.strip() for name, value in pairs}


class ErrorReply(Exception):
    """The server answered a command with an error."""


def command(port: int, *args: str, timeout: float = 5.0) -> str:
    """Send one command to 127.0.0.1:port and return its string reply (RESP2, no client lib).

    Enough for INFO, CLUSTER NODES/INFO and +OK replies; the launcher needs no more.
    """
    request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(request.encode())
        with sock.makefile("rb") as reply:
            line = reply.readline()
            kind, rest = line[:1], line[1:].rstrip(b"\r\n").decode()
            if kind == b"+":
                return rest
            if kind == b"-":
                raise ErrorReply(rest)
            if kind == b"$" and int(rest) >= 0:
                return reply.read(int(rest) + 2)[:-2].decode()
    raise ConnectionError(f"unexpected reply from port {port} to {args[0]}: {line!r}")


def _slot_count(ranges: Iterable[str]) -> int:
    total = 0
    for item in ranges:
        first, _, last = item.partition("-")
        total += int(last or first) - int(first) + 1
    return total


class RedisClusterServer:
    """A cluster of `primaries * (1 + replicas)` `redis-server` processes; a context manager.

    node_timeout_ms is short by default so that a killed primary's replica takes over in about
    two seconds. Replicas may always take over (`cluster-replica-validity-factor 0`) and sync
    at once (`repl-diskless-sync-delay 0`).
    """

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1000,
        binary: str = "redis-server",
        args: Sequence[str] = (),
    ) -> None:
        if primaries < 3:
            raise ConfigError("a Redis Cluster needs at least 3 primaries")
        self.cli = shutil.which("redis-cli")
        if self.cli is None:
            raise ConfigError("'redis-cli' not found: install it (apt-get install redis-server)")
        self.replicas = replicas
        self.size = primaries * (1 + replicas)
        self.node_timeout_ms = node_timeout_ms
        self.binary = binary
        self.args = [
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(node_timeout_ms),
            "--cluster-replica-validity-factor", "0",
            "--repl-diskless-sync-delay", "0",  # replicas sync at once, not after 5 s
            *args,
        ]  # fmt: skip
        self.nodes: dict[int, RedisServer] = {}

    # -- addresses --------------------------------------------------------------------------

    @property
    def ports(self) -> list[int]:
        return list(self.nodes)

    @property
    def url(self) -> str:
        """`redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...` naming every node."""
        return "redis+cluster://" + ",".join(f"{HOST}:{port}" for port in self.nodes)

    @property
    def urls(self) -> list[str]:
        """One `redis://` URL per node (primaries and replicas)."""
        return [f"redis://{HOST}:{port}" for port in self.nodes]

    @property
    def startup_nodes(self) -> list[ClusterNode]:
        require("redis", "redis")
        from redis.cluster import ClusterNode

        return [ClusterNode(HOST, port) for port in self.nodes]  # type: ignore[no-untyped-call]

    # -- lifecycle --------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> RedisClusterServer:
        try:
            while len(self.nodes) < self.size:
                self._start_node()
            create = [
                str(self.cli), "--cluster", "create",
                *(f"{HOST}:{port}" for port in self.nodes),
                "--cluster-replicas", str(self.replicas), "--cluster-yes",
            ]  # fmt: skip
            done = subprocess.run(
                create,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")
            self.wait_ok(timeout)
        except BaseException:
            self.close()
            raise
        return self

    def _start_node(self, attempts: int = 5) -> None:
        for attempt in range(attempts):
            taken = {p + offset for p in self.nodes for offset in (0, BUS_PORT_OFFSET)}
            server = RedisServer(self.binary, self.args, port=free_cluster_port(taken))
            try:
                server.start()
            except RuntimeError:  # the port was taken meanwhile: try another one
                shutil.rmtree(server.dir, ignore_errors=True)
                if attempt == attempts - 1:
                    raise
                continue
            self.nodes[server.port] = server
            return

    def close(self) -> None:
        """Kill every node and remove their directories."""
        for server in self.nodes.values():
            server.stop()
            shutil.rmtree(server.dir, ignore_errors=True)
        self.nodes.clear()

    def __enter__(self) -> RedisClusterServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- faults -----------------------------------------------------------------------------

    def alive(self, port: int) -> bool:
        process = self.nodes[port].process
        return process is not None and process.poll() is None

    def kill(self, port: int) -> None:
        """Kill the node's process (SIGKILL); `restart(port)` brings it back with its identity."""
        self.nodes[port].stop()

    def restart(self, port: int) -> None:
        """Start a killed node again; it rejoins the cluster (a deposed primary as a replica)."""
        if not self.alive(port):
            self.nodes[port].start()

    def failover(
        self,
        replica_port: int,
        mode: Literal["FORCE", "TAKEOVER"] | None = None,
        timeout: float = 10.0,
    ) -> None:
        """`CLUSTER FAILOVER [FORCE|TAKEOVER]` on a replica, then wait until it is a primary.

        Without a mode the failover is coordinated with a live primary; FORCE does without the
        primary, TAKEOVER without the agreement of the other primaries.
        """
        self._command(replica_port, "CLUSTER", "FAILOVER", *([mode] if mode else []))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if parse_info(self._command(replica_port, "INFO", "replication"))["role"] == "master":
                return
            time.sleep(0.05)
        raise TimeoutError(
            f"node {replica_port} is not a primary {timeout}s after CLUSTER FAILOVER"
        )

    # -- topology ---------------------------------------------------------------------------

    def topology(self, port: int | None = None) -> list[ClusterNodeInfo]:
        """`CLUSTER NODES` as seen by the given node (default: the first live one)."""
        if port is None:
            port = next((p for p in self.nodes if self.alive(p)), None)
            if port is None:
                raise RuntimeError("no node of the cluster is running")
        return parse_cluster_nodes(self._command(port, "CLUSTER", "NODES"))

    def primaries(self) -> list[int]:
        """Ports of the live primaries that serve slots."""
        return sorted(
            n.port
            for n in self.topology()
            if n.is_primary and n.slots and not n.failing and self.alive(n.port)
        )

    def replicas_of(self, port: int) -> list[int]:
        """Ports of the live replicas of the node on `port`."""
        nodes = self.topology()
        primary = next(n for n in nodes if n.port == port)
        return sorted(n.port for n in nodes if n.primary_id == primary.id and self.alive(n.port))

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until the cluster is ok and settled; `TimeoutError` names what is not.

        Settled: every live node says ok, all live nodes agree on who serves which slots and
        who replicates whom, only live primaries serve slots, live replicas of live primaries
        are in sync.
        """
        deadline = time.monotonic() + timeout
        problem = self._problem()
        while problem is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster not ok after {timeout}s: {problem}")
            time.sleep(0.05)
            problem = self._problem()

    def flushall(self) -> None:
        """Empty every live primary (their replicas follow)."""
        for port in self.primaries():
            self._command(port, "FLUSHALL")

    def _problem(self) -> str | None:
        live = [p for p in self.nodes if self.alive(p)]
        if not live:
            return "no node is running"
        owners: dict[int, tuple[str, ...]] | None = None
        roles: dict[int, int | None] = {}
        try:
            for port in live:
                info = parse_info(self._command(port, "CLUSTER", "INFO"))
                if info.get("cluster_state") != "ok":
                    return f"node {port}: cluster_state:{info.get('cluster_state')}"
                if info.get("cluster_slots_ok") != str(SLOTS):
                    return f"node {port}: cluster_slots_ok:{info.get('cluster_slots_ok')}"
                if info.get("cluster_known_nodes") != str(self.size):
                    return f"node {port}: cluster_known_nodes:{info.get('cluster_known_nodes')}"
                nodes = parse_cluster_nodes(self._command(port, "CLUSTER", "NODES"))
                seen = {n.port: n.slots for n in nodes if n.is_primary and n.slots}
                ports = {n.id: n.port for n in nodes}
                shape = {n.port: ports.get(n.primary_id or "") for n in nodes}
                if owners is None:
                    owners, roles = seen, shape
                elif seen != owners:
                    return f"node {port} disagrees on which primaries serve which slots"
                elif shape != roles:
                    return f"node {port} disagrees on which node replicates which"
                for node in nodes:
                    if node.port in live and node.failing:
                        return f"node {port} sees live node {node.port} as {sorted(node.flags)}"
                me = next(n for n in nodes if "myself" in n.flags)
                primary = next((n for n in nodes if n.id == me.primary_id), None)
                if primary is not None and primary.port in live:
                    replication = parse_info(self._command(port, "INFO", "replication"))
                    if replication.get("master_link_status") != "up":
                        return f"replica {port} is not in sync with {primary.port}"
        except (OSError, ErrorReply) as exc:
            return f"{type(exc).__name__}: {exc}"
        assert owners is not None
        dead = [p for p in owners if p not in live]
        if dead:
            return f"slots are served by dead nodes {dead}"
        if _slot_count(s for ranges in owners.values() for s in ranges) != SLOTS:
            return "not all slots are assigned"
        return None

    def _command(self, port: int, *args: str) -> str:
        return command(port, *args)
