"""
The etcd coordinator: :class:`~pyrf_blocks.interfaces.ICoordinator` over
etcd 3.4's JSON gateway (``/v3/kv/*``, ``/v3/lease/*``, ``/v3/watch``), with
treq on the reactor.

The gateway's quirks, handled here and nowhere else: keys and values travel
base64-encoded; 64-bit integers are JSON strings; fields whose value is zero,
false or empty are left out (a failed transaction has no ``succeeded``, a
put event no ``type``, an expired lease's keepalive no ``TTL``); a watch is
one long POST whose body is a stream of JSON lines.
"""

import base64
import json

from twisted.internet import defer, protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from ..errors import CoordinatorError
from ..interfaces import ICoordinator
from .kv import Delete, Event, KeyValue, Put, prefix_end

__all__ = ["EtcdCoordinator"]

log = Logger()

#: etcd's names for the targets of a comparison.
_TARGETS = {"create": ("CREATE", "create_revision"), "mod": ("MOD", "mod_revision"),
            "value": ("VALUE", "value")}


def _b64(raw):
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    return base64.b64encode(raw).decode("ascii")


def _unb64(text):
    return base64.b64decode(text or "")


def _key_value(kv):
    return KeyValue(
        key=_unb64(kv["key"]).decode("utf-8"),
        value=_unb64(kv.get("value")),
        create_revision=int(kv.get("create_revision", 0)),
        mod_revision=int(kv.get("mod_revision", 0)),
        lease=int(kv.get("lease", 0)))


def _operation(op):
    if isinstance(op, Put):
        request = {"key": _b64(op.key), "value": _b64(op.value)}
        if op.lease:
            request["lease"] = str(op.lease)
        return {"request_put": request}
    if isinstance(op, Delete):
        return {"request_delete_range": {"key": _b64(op.key)}}
    raise TypeError(f"not a transaction operation: {op!r}")


def _comparison(compare):
    target, field = _TARGETS[compare.target]
    value = _b64(compare.value) if compare.target == "value" else str(int(compare.value))
    return {"key": _b64(compare.key), "target": target, "result": "EQUAL", field: value}


class _WatchLines(protocol.Protocol):
    """Reads the watch body: one JSON object per line, each a batch of events."""

    def __init__(self, on_events, finished):
        self._on_events, self.finished = on_events, finished
        self._buffer = b""

    def dataReceived(self, data):
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if not line.strip():
                continue
            message = json.loads(line)
            if "error" in message:
                self.transport.stopProducing()
                self.finished.errback(CoordinatorError(f"etcd watch failed: {message['error']}"))
                return
            result = message.get("result", {})
            if result.get("canceled"):
                # etcd cancels a watch whose start revision was compacted
                # away, and leaves the stream open.
                self.transport.stopProducing()
                self.finished.errback(CoordinatorError(
                    f"etcd cancelled the watch: "
                    f"{result.get('cancel_reason') or 'revision compacted'}"
                    f" (compacted up to {result.get('compact_revision', '?')})"))
                return
            events = [Event("delete" if e.get("type") == "DELETE" else "put", _key_value(e["kv"]))
                      for e in result.get("events", ())]
            if events:
                self._on_events(events)

    def connectionLost(self, reason):
        if not self.finished.called:
            self.finished.callback(None)


class _Watch:
    def __init__(self, owner, lines):
        self._owner, self._lines = owner, lines
        self.ended = defer.Deferred()
        self._cancelled = False
        lines.finished.addBoth(self._finished)

    def _finished(self, result):
        self._owner._watches.discard(self)
        if not self._cancelled:
            why = (result.getErrorMessage() if isinstance(result, Failure)
                   else f"etcd at {self._owner.url} closed the watch")
            self.ended.callback(why)

    def cancel(self):
        self._cancelled = True
        self._owner._watches.discard(self)
        transport = self._lines.transport
        if transport is not None:
            transport.stopProducing()


@implementer(ICoordinator)
class EtcdCoordinator:
    """
    :param url: an etcd client URL, ``http://127.0.0.1:2379``.
    :param reactor: the reactor treq runs on.
    :param timeout: seconds any one request (not a watch) may take.
    :param ca: certificates an ``https://`` etcd's must be signed by
        (:func:`pyrf_blocks.net.tls.read_ca`), the system's by default.
    """

    def __init__(self, url, reactor, timeout=5.0, ca=None):
        from twisted.web.client import HTTPConnectionPool

        from ..net.connections import new_client
        from ..net.tls import read_ca

        if not url.startswith(("http://", "https://")):
            raise ValueError(f"an etcd URL starts with http:// or https://, not {url!r}")
        self.url = url.rstrip("/")
        self._reactor = reactor
        self._timeout = timeout
        self._pool = HTTPConnectionPool(reactor, persistent=True)
        self._ca = read_ca(ca)
        self._ssl = None
        self._client = new_client(reactor, self._ca, self._pool)
        self._watches = set()

    def __repr__(self):
        return f"EtcdCoordinator({self.url!r})"

    async def _call(self, path, body, timeout=None):
        try:
            response = await self._client.post(
                self.url + path, data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"}, reactor=self._reactor, timeout=timeout or self._timeout)
            content = await response.content()
        except Exception as error:  # a refused connection, a timeout, a reset
            raise CoordinatorError(f"etcd at {self.url} unreachable: {error}") from error
        try:
            answer = json.loads(content)
        except ValueError:
            raise CoordinatorError(
                f"etcd at {self.url} answered {response.code} with non-JSON {content[:200]!r}")
        if response.code != 200 or "error" in answer:
            raise CoordinatorError(
                f"etcd at {self.url}{path} refused: {answer.get('error') or answer.get('message')}")
        return answer

    def grant(self, ttl):
        async def grant():
            answer = await self._call("/v3/lease/grant", {"TTL": str(int(ttl))})
            return int(answer["ID"])
        if ttl < 1:
            raise ValueError(f"an etcd lease needs a ttl of at least 1 second, not {ttl!r}")
        return defer.ensureDeferred(grant())

    def keepalive(self, lease):
        async def keepalive():
            answer = await self._call("/v3/lease/keepalive", {"ID": str(lease)})
            return int(answer.get("result", {}).get("TTL", 0))
        return defer.ensureDeferred(keepalive())

    def keepalive_blocking(self, lease, timeout):
        """
        :meth:`keepalive` without the reactor, for a thread of its own
        (:class:`~pyrf_blocks.cluster.lease.KeptLease`): the TTL left, 0
        for an expired lease; :class:`CoordinatorError` when etcd does not
        answer within ``timeout`` seconds.
        """
        import ssl
        import urllib.error
        import urllib.request

        if self._ssl is None and self.url.startswith("https://"):
            self._ssl = ssl.create_default_context(
                cadata=self._ca.decode("ascii") if self._ca else None)
        request = urllib.request.Request(
            self.url + "/v3/lease/keepalive", data=json.dumps({"ID": str(lease)}).encode(),
            headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self._ssl) as answer:
                content = answer.read()
        except (OSError, urllib.error.URLError) as error:
            raise CoordinatorError(f"etcd at {self.url} unreachable: {error}") from error
        try:
            return int(json.loads(content).get("result", {}).get("TTL", 0))
        except (ValueError, AttributeError):
            raise CoordinatorError(f"etcd at {self.url} answered a keepalive with "
                                   f"{content[:200]!r}") from None

    def revoke(self, lease):
        async def revoke():
            await self._call("/v3/lease/revoke", {"ID": str(lease)})
        return defer.ensureDeferred(revoke())

    def range(self, prefix):
        async def range_():
            answer = await self._call("/v3/kv/range", {
                "key": _b64(prefix), "range_end": _b64(prefix_end(prefix))})
            kvs = [_key_value(kv) for kv in answer.get("kvs", ())]
            return kvs, int(answer["header"]["revision"])
        return defer.ensureDeferred(range_())

    def put(self, key, value, lease=0):
        async def put():
            body = {"key": _b64(key), "value": _b64(value)}
            if lease:
                body["lease"] = str(lease)
            answer = await self._call("/v3/kv/put", body)
            return int(answer["header"]["revision"])
        return defer.ensureDeferred(put())

    def delete(self, key):
        async def delete():
            answer = await self._call("/v3/kv/deleterange", {"key": _b64(key)})
            return int(answer["header"]["revision"])
        return defer.ensureDeferred(delete())

    def txn(self, compare, success, failure=()):
        async def txn():
            answer = await self._call("/v3/kv/txn", {
                "compare": [_comparison(c) for c in compare],
                "success": [_operation(op) for op in success],
                "failure": [_operation(op) for op in failure]})
            return bool(answer.get("succeeded", False)), int(answer["header"]["revision"])
        return defer.ensureDeferred(txn())

    def watch(self, prefix, callback, start_revision=0):
        async def watch():
            create = {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))}
            if start_revision:
                create["start_revision"] = str(start_revision)
            try:
                response = await self._client.post(
                    self.url + "/v3/watch", data=json.dumps({"create_request": create}).encode(),
                    headers={"Content-Type": "application/json"}, reactor=self._reactor, timeout=self._timeout)
            except Exception as error:
                raise CoordinatorError(f"etcd at {self.url} unreachable: {error}") from error
            if response.code != 200:
                raise CoordinatorError(f"etcd at {self.url} refused a watch: {response.code}")
            finished = defer.Deferred()
            lines = _WatchLines(callback, finished)
            response.deliverBody(lines)
            handle = _Watch(self, lines)
            if not finished.called:
                self._watches.add(handle)
            return handle
        return defer.ensureDeferred(watch())

    def close(self):
        for handle in list(self._watches):
            handle.cancel()
        return self._pool.closeCachedConnections()
