"""
A real etcd server for tests: Debian's ``etcd-server`` started on free
loopback ports in a temporary directory, stopped (or killed, or restarted)
by the test.
"""

import shutil
import socket
import subprocess
import time
import urllib.request

__all__ = ["EtcdServer", "free_port"]


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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

    @property
    def url(self):
        """The client URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.client_port}"

    def start(self, timeout=20.0):
        """Start it and wait until it answers; return self."""
        peer = f"http://127.0.0.1:{self.peer_port}"
        self.process = subprocess.Popen(
            [self.binary, "--name", "test", "--data-dir", str(self.directory / "etcd"),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
             "--initial-cluster", f"test={peer}", "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=open(self.directory / "etcd.log", "ab"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.process.returncode}; see "
                                   f"{self.directory / 'etcd.log'}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as answer:
                    if b'"true"' in answer.read():
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"etcd did not answer on {self.url} within {timeout} s")

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

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
