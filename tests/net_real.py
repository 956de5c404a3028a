"""
Real workers for the tests of pyrf_blocks.net: subprocesses of
``python -m pyrf_blocks.cli worker`` on loopback, and a small blocking
HTTP client to talk to them from a test (which runs no reactor).
"""

import contextlib
import http.client
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyrf_blocks.testing import poll_until
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]


def environment(**extra):
    """
    The environment of a child that must import this checkout's pyrf_blocks.
    """
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    env.update(extra)
    return env


def read_line(stream, timeout):
    """
    One line from a child's stdout pipe, or AssertionError after ``timeout`` s.
    """
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        ready, _, _ = select.select([stream], [], [], max(left, 0))
        if not ready:
            raise AssertionError(f"no line within {timeout} s (got {data!r})")
        byte = os.read(stream.fileno(), 1)
        if not byte:
            raise AssertionError(f"the child closed its output after {data!r}")
        data += byte
    return data.decode().strip()


def gone(pid):
    """
    True once ``pid`` is no longer a live process (zombies count as gone).
    """
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid, timeout=20.0):
    """
    True once ``pid`` is gone, False if it still lives after ``timeout`` s.
    """
    try:
        return poll_until(lambda: gone(pid), timeout, f"process {pid} to end")
    except TimeoutError:
        return False


def terminate(process, timeout=30):
    """
    SIGTERM ``process`` if it still runs and return its output; SIGKILL it
    if it has not ended within ``timeout`` seconds.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()[0]


class RealWorker:
    """
    ``pyrf-blocks worker`` in a subprocess, and requests to it.
    """

    #: Every worker started by this test process, in order (a chaos test
    #: that fails shows their stderr: tests/chaos/conftest.py).
    started = []

    def __init__(self, listen="tcp:0:interface=127.0.0.1", token=None, args=(), env=None):
        self.token = token
        self.log = tempfile.TemporaryFile()
        RealWorker.started.append(self)
        env = environment(**({"PYRF_BLOCKS_TOKEN": token} if token else {}), **(env or {}))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pyrf_blocks.cli", "worker", "--listen", listen, *args],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=self.log)
        line = read_line(self.process.stdout, 120)
        assert line.startswith("listening on "), line
        self.url = line.removeprefix("listening on ")
        parts = urlsplit(self.url)
        self.host, self.port = parts.hostname, parts.port

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def peak_rss_kib(self):
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise AssertionError("no VmHWM")

    def connection(self):
        return http.client.HTTPConnection(self.host, self.port, timeout=30)

    def call(self, method, path, body=None, headers=None, token=True, connection=None):
        """
        ``(status, headers, body)`` of one request; JSON bodies from dicts.
        """
        headers = dict(headers or {})
        if token and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        own = connection is None
        connection = connection or self.connection()
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response, response.read()
        finally:
            if own:
                connection.close()

    def json(self, method, path, body=None, expect=200):
        status, _, data = self.call(method, path, body)
        assert status == expect, (status, data)
        return json.loads(data)


@contextlib.contextmanager
def real_workers(listens, token):
    """
    A :class:`RealWorker` per endpoint of ``listens``, all stopped at the end.
    """
    workers = []
    try:
        for listen in listens:
            workers.append(RealWorker(listen, token=token))
        yield workers
    finally:
        for worker in workers:
            worker.stop()
