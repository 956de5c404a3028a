"""
Real servers for integration tests: a PostgreSQL cluster, a mosquitto
broker and an etcd member, each in a temporary directory on a free loopback
port, stopped on leaving the ``with`` block.  Never a mock: these are Debian's binaries
(``tools/system-deps.sh`` installs them).

PostgreSQL refuses to run as root; as root (a CI container) the cluster
is made and run as the ``postgres`` user that Debian's package creates,
through ``runuser``.
"""

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import urllib.request

from .running import poll_until

__all__ = ["publish", "free_port", "postgres_server", "PostgresServer", "mosquitto_broker",
           "MosquittoBroker", "POSTGRES_BIN", "MOSQUITTO", "EtcdServer"]

#: Where Debian puts PostgreSQL's server programs (the newest version found).
POSTGRES_BIN = next(
    (os.path.join("/usr/lib/postgresql", v, "bin") for v in
     sorted(os.listdir("/usr/lib/postgresql") if os.path.isdir("/usr/lib/postgresql") else (),
            key=lambda v: int(v) if v.isdigit() else 0, reverse=True)),
    None)

#: The broker's program.
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


#: Where :func:`free_port` looks when the kernel's range for outgoing
#: connections cannot be read (Linux's default range starts at 32768).
_EPHEMERAL_DEFAULT = (32768, 60999)


def _ephemeral_ports():
    # (lowest, highest) port the kernel gives outgoing connections and bind(0).
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/sys/net/ipv4/ip_local_port_range") as stream:
            low, high = map(int, stream.read().split())
            return low, high
    return _EPHEMERAL_DEFAULT


def free_port():
    """
    A TCP port on 127.0.0.1 that nothing is bound to now, for a server
    about to start.  It is drawn at random below the kernel's range for
    outgoing connections (``net.ipv4.ip_local_port_range``): a port from
    that range (``bind(0)``'s) can be taken, before the server binds it, by
    a connection any other test opens meanwhile (etcd once exited with
    "address already in use" so).  The kernel's choice where no such port
    is free.
    """
    low, _ = _ephemeral_ports()
    draw = random.SystemRandom()  # (not the random module's: tests seed that)
    if low > 2048:
        for _ in range(64):
            port = draw.randrange(max(1024, low // 2), low)
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_listening(port, timeout, process=None):
    def listening():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return True
        return False

    poll_until(listening, timeout, f"a server listening on 127.0.0.1:{port}")


class PostgresServer:
    """
    A PostgreSQL cluster in ``directory``: :meth:`start`, :meth:`stop` (and
    start again: the data stays), :attr:`url` to connect.
    """

    def __init__(self, directory):
        if POSTGRES_BIN is None:
            raise RuntimeError("PostgreSQL is not installed (sh tools/system-deps.sh)")
        self.directory = directory
        self.data = os.path.join(directory, "data")
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as = []
        if os.geteuid() == 0:
            import pwd
            user = pwd.getpwnam("postgres")
            os.chown(directory, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8")

    def _run(self, program, *args):
        subprocess.run([*self._as, os.path.join(POSTGRES_BIN, program), *args],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       cwd=self.directory)

    def start(self, timeout=30.0):
        options = (f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", self.data, "-l", os.path.join(self.directory, "log"),
                  "-o", options, "-w", "-t", str(int(timeout)), "start")

    def stop(self):
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")


@contextlib.contextmanager
def postgres_server():
    """
    A running :class:`PostgresServer` in a temporary directory.
    """
    with tempfile.TemporaryDirectory(prefix="pyrf-pg-") as directory:
        server = PostgresServer(directory)
        server.start()
        try:
            yield server
        finally:
            server.stop()


class MosquittoBroker:
    """
    A mosquitto broker on a free loopback port: :attr:`port`; :meth:`stop`.
    Unlimited in-flight and queued messages (the defaults, 20 and 1000,
    would throttle a subscriber that acknowledges in batches and drop
    what a stopped one missed).
    """

    def __init__(self, directory):
        self.port = free_port()
        self.config = os.path.join(directory, "mosquitto.conf")
        with open(self.config, "w") as out:
            out.write(f"listener {self.port} 127.0.0.1\n"
                      "allow_anonymous true\n"
                      "max_inflight_messages 0\n"
                      "max_queued_messages 0\n"
                      "persistence false\n"
                      "log_dest none\n")
        self.process = None

    def start(self, timeout=10.0):
        self.process = subprocess.Popen([MOSQUITTO, "-c", self.config],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_listening(self.port, timeout, self.process)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def mosquitto_broker():
    """
    A running :class:`MosquittoBroker` with its configuration in a
    temporary directory.
    """
    with tempfile.TemporaryDirectory(prefix="pyrf-mqtt-") as directory:
        broker = MosquittoBroker(directory)
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()


def publish(port, messages, qos=1, host="127.0.0.1", client_id=""):
    """
    Publish ``messages`` (``(topic, payload)`` pairs) to the broker at
    ``port`` with paho, and return once the broker has them all
    (acknowledged, for QoS 1).  Blocking: call it from a thread in tests
    that run a reactor.
    """
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    messages = list(messages)
    try:
        # At most 50 000 unconfirmed at a time: packet ids are 16 bits.
        for first in range(0, len(messages), 50000):
            infos = [client.publish(topic, payload, qos=qos)
                     for topic, payload in messages[first:first + 50000]]
            for info in infos:
                info.wait_for_publish(60)
    finally:
        client.disconnect()
        client.loop_stop()


class _PortTaken(Exception):
    """etcd exited because a port it was to listen on is taken."""


class EtcdServer:
    """
    One etcd member on loopback.

    :param directory: where it keeps its data (a test's ``tmp_path``).
    :param binary: the ``etcd`` executable.
    """

    def __init__(self, directory, binary=None):
        self.binary = binary or shutil.which("etcd") or "/usr/bin/etcd"
        self.directory = directory
        self.client_port, self.peer_port = free_port(), free_port()
        self.process = None
        self._started = False

    @property
    def url(self):
        """The client URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.client_port}"

    def start(self, timeout=20.0):
        """
        Start it and wait until it answers; return self.  On its first
        start, a port taken meanwhile (etcd exits: "address already in
        use") is replaced by other free ones, three times at most; a
        restart keeps its URL.
        """
        for attempt in range(3):
            try:
                return self._start(timeout)
            except _PortTaken:
                if self._started or attempt == 2:
                    raise RuntimeError(f"etcd exited: a port of {self.url} or "
                                       f"{self.peer_port} is taken; see "
                                       f"{self.directory / 'etcd.log'}") from None
                # Never started: no data to keep, and what it made names the old peer URL.
                shutil.rmtree(self.directory / "etcd", ignore_errors=True)
                self.client_port, self.peer_port = free_port(), free_port()

    def _start(self, timeout):
        peer = f"http://127.0.0.1:{self.peer_port}"
        log = self.directory / "etcd.log"
        with open(log, "ab") as stderr:
            logged = stderr.tell()  # what this start writes comes after
            self.process = subprocess.Popen(
                [self.binary, "--name", "test", "--data-dir", str(self.directory / "etcd"),
                 "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"test={peer}", "--log-level", "error"],
                stdout=subprocess.DEVNULL, stderr=stderr)

        def healthy():
            if self.process.poll() is not None:
                if b"address already in use" in log.read_bytes()[logged:]:
                    raise _PortTaken()
                raise RuntimeError(f"etcd exited with {self.process.returncode}; see {log}")
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(self.url + "/health", timeout=1) as answer:
                return b'"true"' in answer.read()
            return False

        try:
            poll_until(healthy, timeout, f"etcd to answer on {self.url}")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"etcd did not answer on {self.url} within {timeout} s")
        self._started = True
        return self

    def stop(self):
        """Stop it (SIGTERM, then SIGKILL); its data stays for a restart."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def read(self, prefix):
        """
        ``{key: value}`` of the keys under ``prefix``, read with ``etcdctl``
        (independent of our own client), as text.
        """
        out = subprocess.run(["etcdctl", "--endpoints", self.url, "get", "--prefix", prefix],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        lines = out.splitlines()
        return dict(zip(lines[0::2], lines[1::2]))

    def owners(self, prefix="/pyrf/"):
        """``{computation: worker}``: the cluster's assignments under ``prefix``."""
        import json

        return {key.rsplit("/", 1)[1]: json.loads(value)["worker"]
                for key, value in self.read(f"{prefix}assign/").items()}

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
