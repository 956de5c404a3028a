"""
The network source: a ThinkRF analyzer (WSA4000, WSA5000, R5500) as an IQ
block.

It connects to the SCPI port, identifies the instrument (``*IDN?``), takes
the acquisition lock, applies the settings, checks the instrument accepted
them (``:SYSTEM:ERROR?``), connects the data port and starts the stream.
VRT data packets become IQ chunks of ``packets_per_block`` packets stamped
with the instrument's own timestamps; context packets become ``meta``.

Bad packets cost no valid data: the parser checks each packet's place in
its stream (:class:`~.vrt.VRTStreamParser`) and skips junk without
swallowing the packets around it; data packets of the other ThinkRF
formats (I14, I24) are ignored and counted (``stats["other_formats"]``);
context fields outside what the instrument family can report (a negative
or huge sample rate, a centre frequency outside its range) are ignored and
counted (``stats["bad_context"]``), the metadata keeping the last sane
value.

Backpressure: while a consumer pauses the block, the data socket's
transport stops reading, so TCP flow control reaches the instrument.

Connections: an analyzer that was never reached fails the graph at the
first failure (refused, no answer within ``timeout``), naming the address,
unless ``connect_attempts`` asks to wait for one that is still starting.  A
connection that streamed and was lost is logged and made again, up to
``reconnect_attempts`` times in a row.
"""

from collections import deque

import numpy as np
from twisted.internet import defer, error as net_error, protocol
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from zope.interface import implementer

from ..backoff import Backoff
from ..block import Source
from ..errors import (InstrumentConnectionError, InstrumentError, SCPIConnectionLost,
                      SCPITimeout)
from ..interfaces import IIQProducer
from ..registry import register
from ..timebase import Timebase, beyond_half_sample, duration_ns
from . import vrt
from ..defaults import MODEL
from .models import DATA_PORT, SCPI_PORT, model_of
from .scpi import SCPIClientFactory

__all__ = ["thinkrf_analyzer"]

log = Logger()


#: Longest wait between two attempts to reconnect, seconds.
MAX_RECONNECT_DELAY = 30.0

_CONNECTION_ERRORS = (net_error.ConnectError, net_error.ConnectionLost,
                      net_error.ConnectionDone, SCPIConnectionLost, SCPITimeout,
                      InstrumentConnectionError)


def _context_limits(model):
    """
    The values each context field of ``model`` may take: Hz, and dBm for
    the reference level.
    """
    rate, (_, top) = model.full_rate, model.frequency_range
    return {"sample_rate": (1.0, rate), "bandwidth": (0.0, rate),
            "rf_frequency": (0.0, top + rate), "rf_offset": (-rate, rate),
            "reference_level": (-200.0, 100.0)}


class _DataProtocol(protocol.Protocol):
    """
    The data connection: bytes → VRT packets → the source.
    """

    def __init__(self, source, session):
        self.source = source
        self.session = session
        self.parser = vrt.VRTStreamParser(stream_ids=vrt.THINKRF_STREAMS)
        self.connected_deferred = defer.Deferred()
        self._reported = 0

    #: Bytes read from the socket at a time: larger than Twisted's 64 KiB so
    #: that each read holds long runs of packets to parse together.
    read_size = 1 << 20

    def connectionMade(self):
        if hasattr(self.transport, "bufferSize"):
            self.transport.bufferSize = self.read_size
        self.connected_deferred.callback(self)

    def dataReceived(self, data):
        parser = self.parser
        packets = parser.feed(data, runs=True)
        if len(parser.problems) != self._reported or parser.stats["resyncs"] > self._reported:
            self._report()
        if parser.lost_sync:
            log.error("{block}: no valid VRT packet in {count} bytes from {peer}; "
                      "dropping the data connection", block=self.source.label,
                      count=parser.max_garbage, peer=self.source.data_address)
            self.transport.loseConnection()
        if packets:
            self.source._receive_packets(self.session, packets)

    def _report(self):
        new = self.parser.problems[-(len(self.parser.problems) - self._reported
                                     if len(self.parser.problems) > self._reported else 1):]
        for message in new:
            log.warn("{block}: VRT stream from {peer}: {problem}", block=self.source.label,
                     peer=self.source.data_address, problem=message)
        self._reported = len(self.parser.problems)

    def connectionLost(self, reason):
        leftover = self.parser.close()
        if leftover:
            log.warn("{block}: {problem}", block=self.source.label, problem=leftover)
        self.source._data_lost(self.session, reason)


class _DataFactory(protocol.ClientFactory):
    def __init__(self, source, session):
        self.source = source
        self.session = session
        self.connected = defer.Deferred()

    def buildProtocol(self, addr):
        data = _DataProtocol(self.source, self.session)
        data.connected_deferred.chainDeferred(self.connected)
        return data

    def clientConnectionFailed(self, connector, reason):
        if not self.connected.called:
            self.connected.errback(reason)


@register
@implementer(IIQProducer)
class thinkrf_analyzer(Source):
    """
    IQ from a ThinkRF analyzer on the network (or the emulator).

    :param host: the analyzer's host name or address.
    :param model: ``"WSA4000"``, ``"WSA5000"`` or ``"R5500"``: the family
        expected from ``*IDN?`` and the limits settings are checked against.
    :param center_frequency: RF centre frequency, Hz.
    :param decimation: 1 (none) or a decimation factor of the family; the
        sample rate is the family's full rate divided by it.
    :param samples_per_packet: samples in each VRT packet.
    :param packets_per_block: packets per emitted chunk.
    :param reference_level: dBm of a full-scale tone (``:INPUT:REFLEVEL``);
        ``None`` keeps the instrument's and reads it from context packets.
    :param scpi_port: TCP port of the SCPI connection (37001).
    :param data_port: TCP port of the VRT stream (37000).
    :param timeout: seconds to wait for a connection or an SCPI reply.
    :param connect_attempts: times the first connection is tried again
        when it fails, before the analyzer was ever reached (0: the first
        failure fails the graph, naming the address).  Give some to wait
        for an analyzer that is still starting.
    :param reconnect_attempts: times a lost connection (one that streamed)
        is made again in a row before the graph fails (0: never).
    :param reconnect_delay: seconds before each new attempt (doubled each
        time, up to :data:`MAX_RECONNECT_DELAY`; see :mod:`pyrf_blocks.backoff`).
    """

    type_name = "thinkrf_analyzer"
    param_units = {"center_frequency": "Hz", "decimation": "count",
                   "samples_per_packet": "count", "packets_per_block": "count",
                   "reference_level": "dBm", "scpi_port": "count", "data_port": "count",
                   "timeout": "s", "connect_attempts": "count", "reconnect_attempts": "count",
                   "reconnect_delay": "s"}
    kind = "iq"

    def __init__(self, host, model=MODEL, center_frequency=2.4e9, decimation=1,
                 samples_per_packet=1024, packets_per_block=16, reference_level=None,
                 scpi_port=SCPI_PORT, data_port=DATA_PORT, timeout=5.0,
                 connect_attempts=0, reconnect_attempts=3, reconnect_delay=1.0, **kwargs):
        self.model = model_of(model)
        self.model.check(center_frequency=center_frequency, decimation=decimation,
                         samples_per_packet=samples_per_packet)
        if not isinstance(packets_per_block, int) or packets_per_block < 1:
            raise ValueError(f"{model}: packets_per_block must be a positive integer, "
                             f"got {packets_per_block!r}")
        self.host = host
        self.center_frequency = float(center_frequency)
        self.decimation = int(decimation)
        self.samples_per_packet = int(samples_per_packet)
        self.packets_per_block = packets_per_block
        self.reference_level = reference_level
        self.scpi_port = scpi_port
        self.data_port = data_port
        self.timeout = timeout
        self.connect_attempts = connect_attempts
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_delay = reconnect_delay
        self.identity = None
        self._scpi = self._data = None
        self._session = 0
        self._reconnects = None
        self._streaming = False
        super().__init__(**kwargs)

    @property
    def sample_rate(self):
        return self.model.full_rate / self.decimation

    @property
    def data_address(self):
        return f"{self.host}:{self.data_port}"

    def reset(self):
        self.stats = {"packets": 0, "context_packets": 0, "samples": 0, "gaps": 0,
                      "sample_loss": 0, "over_range": 0, "invalid_data": 0,
                      "other_formats": 0, "bad_context": 0, "reconnects": 0}
        self._pending = deque()
        self._block = []
        self._block_packets = 0
        self._block_start = None
        self._timebase = None
        self._index = 0
        self._context = {}
        self._meta = self._make_meta()

    # Lifecycle: the core's Source calls these.

    def on_start(self):
        self._streaming = True
        # Until a session of this run reaches the stream, failures count
        # against connect_attempts; then a failure is a lost connection.
        self._reconnects = Backoff(self.graph.reactor, self.reconnect_attempts,
                                   self.reconnect_delay, MAX_RECONNECT_DELAY,
                                   level=LogLevel.warn, first_retries=self.connect_attempts)
        self._connect()

    def on_stop(self):
        self._streaming = False
        self._session += 1  # callbacks of the old session are ignored
        if self._reconnects is not None:
            self._reconnects.cancel()
        self._disconnect()

    def stopProducing(self):
        # Ending the stream: what was received but held back by a pause
        # still reaches the consumers, before end-of-stream.
        self._drain(force=True)
        self._emit_block()
        super().stopProducing()

    def on_pause(self):
        if self._data is not None:
            self._data.transport.pauseProducing()

    def on_resume(self):
        self._drain()
        if not self.paused and self._data is not None:
            self._data.transport.resumeProducing()

    # Connection.

    def _connect(self):
        self._session += 1
        session = self._session
        self._disconnect()
        self._run_session(session).addErrback(self._session_failed, session)

    @defer.inlineCallbacks
    def _run_session(self, session):
        reactor = self.graph.reactor
        factory = SCPIClientFactory(reactor, self.timeout)
        reactor.connectTCP(self.host, self.scpi_port, factory, timeout=self.timeout)
        scpi = yield self._named(factory.connected, "SCPI", self.scpi_port)
        if session != self._session:
            scpi.close()
            return
        self._scpi = scpi
        identity = yield scpi.query("*IDN?")
        self._check_identity(identity)
        if not self._block:
            self._meta = self._make_meta()
        granted = yield scpi.query(":SYSTEM:LOCK:REQUEST? ACQ")
        if granted.strip() != "1":
            raise InstrumentError(f"{self.label}: {self.host} refused the acquisition lock "
                                  "(another client holds it)")
        for command in self._setup_commands():
            yield scpi.command(command)
        status = yield scpi.query(":SYSTEM:ERROR?")
        if not status.strip().startswith("0"):
            raise InstrumentError(f"{self.label}: {self.host} rejected the settings: {status}")
        data_factory = _DataFactory(self, session)
        reactor.connectTCP(self.host, self.data_port, data_factory, timeout=self.timeout)
        data = yield self._named(data_factory.connected, "data", self.data_port)
        if session != self._session:
            data.transport.loseConnection()
            return
        self._data = data
        if self.paused:
            data.transport.pauseProducing()
        yield scpi.command(":TRACE:STREAM:START")
        self._reconnects.reach()  # (from now on a failure is a lost connection)
        log.info("{block}: streaming from {identity} at {host} ({rate:g} Sa/s, "
                 "centre {frequency:g} Hz)", block=self.label, identity=identity,
                 host=self.host, rate=self.sample_rate, frequency=self.center_frequency)

    def _named(self, connected, port_name, port):
        """
        ``connected`` (a connection being made), failing with an
        :class:`InstrumentConnectionError` that names the address when the
        connection cannot be made.
        """
        def failed(failure):
            failure.trap(net_error.ConnectError, net_error.DNSLookupError)
            reason = (f"no answer within {self.timeout:g} s"
                      if failure.check(net_error.TimeoutError) else failure.getErrorMessage())
            raise InstrumentConnectionError(
                f"cannot connect to the {port_name} port {self.host}:{port}: {reason}")
        return connected.addErrback(failed)

    def _check_identity(self, identity):
        parts = [part.strip() for part in identity.split(",")]
        if len(parts) < 2:
            raise InstrumentError(f"{self.label}: {self.host} answered *IDN? with "
                                  f"{identity!r}, not a ThinkRF identity")
        self.identity = identity
        if not parts[1].upper().startswith(self.model.name):
            log.warn("{block}: expected a {expected} but {host} is a {model}",
                     block=self.label, expected=self.model.name, host=self.host,
                     model=parts[1])

    def _setup_commands(self):
        commands = [":SYSTEM:ABORT", ":SYSTEM:FLUSH",
                    f":FREQUENCY:CENTER {self.center_frequency:.0f}",
                    f":SENSE:DECIMATION {self.decimation}",
                    f":TRACE:SPP {self.samples_per_packet}",
                    f":TRACE:BLOCK:PACKETS {self.packets_per_block}"]
        if self.reference_level is not None:
            commands.append(f":INPUT:REFLEVEL {float(self.reference_level):g}")
        return commands

    def _session_failed(self, failure, session):
        if session != self._session or not self._streaming:
            return None
        if failure.check(*_CONNECTION_ERRORS):
            self._lost(failure.getErrorMessage())
            return None
        self.graph.fail(self, failure)
        return None

    def _data_lost(self, session, reason):
        if session != self._session or not self._streaming:
            return
        self._data = None
        self._lost(f"data connection to {self.data_address} lost "
                   f"({reason.getErrorMessage()})")

    def _lost(self, why):
        self._session += 1
        self._disconnect()
        self._emit_block()
        self._timebase = None
        reconnects = self._reconnects
        if not reconnects.retry(self.label, why, self._connect):
            attempts = reconnects.failures - 1
            message = f"{self.label}: {why}"
            if attempts:
                message += (f"; gave up after {attempts} "
                            f"{'reconnection' if reconnects.reached else 'connection'} "
                            f"attempt(s) over {reconnects.elapsed:.1f} s")
            self.graph.fail(self, Failure(InstrumentConnectionError(message)))
            return
        if reconnects.reached:
            self.stats["reconnects"] += 1

    def _disconnect(self):
        scpi, self._scpi = self._scpi, None
        data, self._data = self._data, None
        if scpi is not None and scpi.is_open:
            scpi.command(":TRACE:STREAM:STOP").addErrback(lambda _: None)
            scpi.close()
        if data is not None and data.transport is not None:
            data.transport.loseConnection()

    # Packets to chunks.

    def _receive_packets(self, session, packets):
        if session != self._session or not self._streaming:
            return
        self._reconnects.succeeded()
        self._pending.extend(packets)
        self._drain()

    def _drain(self, force=False):
        pending = self._pending
        while pending and (force or not self.paused and self._streaming):
            item = pending.popleft()
            if not item.is_data:
                self._add_context(item)
            elif isinstance(item, vrt.DataRun):
                self._add_run(item)
            else:
                self._add_data(item)

    def _make_meta(self):
        context = self._context
        rate = context.get("sample_rate", self.sample_rate)
        meta = {
            "center_frequency": context.get("rf_frequency", self.center_frequency)
            + context.get("rf_offset", 0.0),
            "sample_rate": rate,
            "reference_level": context.get("reference_level",
                                           self.reference_level
                                           if self.reference_level is not None else 0.0),
            "instrument": self.model.name,
            "decimation": self.decimation,
        }
        for name in ("bandwidth", "sweep_id"):
            if name in context:
                meta[name] = context[name]
        if self.identity:
            meta["identity"] = self.identity
        return meta

    def _add_context(self, packet):
        self.stats["context_packets"] += 1
        changed = {name: value for name, value in packet.fields.items()
                   if self._context.get(name) != value and self._sane(name, value)}
        if not changed:
            return
        self._context.update(changed)
        meta = self._make_meta()
        if meta != self._meta:
            self._emit_block()
            if meta["sample_rate"] != self._meta["sample_rate"]:
                self._timebase = None
            self._meta = meta

    def _sane(self, name, value):
        """
        Whether a context field's value is one this family can report;
        counted and logged when not.
        """
        limits = _context_limits(self.model).get(name)
        if limits is None or limits[0] <= value <= limits[1]:
            return True
        self.stats["bad_context"] += 1
        log.warn("{block}: ignoring context field {name} = {value!r} from {peer}: a "
                 "{model} reports {low:g}..{high:g}", block=self.label, name=name,
                 value=value, peer=self.data_address, model=self.model.name,
                 low=limits[0], high=limits[1])
        return False

    def _add_data(self, packet):
        """
        One data packet (runs of regular packets take :meth:`_add_run`).
        """
        self.stats["packets"] += 1
        if packet.stream_id != vrt.STREAM_I14Q14:
            self._other_format(packet.format, 1)
            return
        if packet.trailer is not None:
            self._count_trailers(np.array([packet.trailer.word], np.uint32), packet.time_ns)
        self._check_time(packet.time_ns)
        self._append(packet.payload, 1, len(packet.payload) // 4)

    def _add_run(self, run):
        """
        Consecutive data packets, handled with a few numpy calls.
        """
        if run.stream_id != vrt.STREAM_I14Q14:
            self.stats["packets"] += len(run)
            self._other_format(run.format, len(run))
            return
        spp = run.samples_per_packet
        times = run.time_ns
        rate = self._meta["sample_rate"]
        steps = np.diff(times) - duration_ns(spp, rate)
        if len(steps) and beyond_half_sample(np.max(np.abs(steps)), rate):
            for packet in run.unpack():  # a discontinuity inside: packet by packet
                self._add_data(packet)
            return
        self.stats["packets"] += len(run)
        if run.trailers is not None:
            self._count_trailers(run.trailers, int(times[0]))
        self._check_time(int(times[0]))
        while run is not None:
            piece, run = run.split(self.packets_per_block - self._block_packets)
            self._append(piece, len(piece), len(piece) * spp)

    def _other_format(self, format, count):
        self.stats["other_formats"] += count
        if self.stats["other_formats"] == count:
            # (Not ``format=``: that is the name of Logger.warn's own argument.)
            log.warn("{block}: ignoring {payload} data packets of another stream: "
                     "only I14Q14 (IQ) is supported", block=self.label, payload=format)

    def _count_trailers(self, words, time):
        words = words.astype(np.uint32)
        stats = self.stats
        lost = int(np.count_nonzero(words >> 24 & words >> 12 & 1))
        stats["over_range"] += int(np.count_nonzero(words >> 25 & words >> 13 & 1))
        stats["invalid_data"] += int(np.count_nonzero(words >> 30 & ~(words >> 18) & 1))
        if lost:
            stats["sample_loss"] += lost
            log.warn("{block}: the instrument reports lost samples in {count} packet(s) "
                     "from {time} ns", block=self.label, count=lost, time=time)

    def _check_time(self, time):
        """
        Compare a packet's timestamp with where the stream should be; a
        discontinuity ends the chunk and starts a new time base.
        """
        rate = self._meta["sample_rate"]
        if self._timebase is not None:
            predicted = self._time_of(self._index)
            if beyond_half_sample(time - predicted, rate):
                self.stats["gaps"] += 1
                log.warn("{block}: stream discontinuity: packet at {time} ns, "
                         "expected {predicted} ns", block=self.label, time=time,
                         predicted=predicted)
                self._emit_block()
                self._timebase = None
        if self._timebase is None:
            self._timebase = Timebase(time, rate)
            self._index = 0

    def _append(self, piece, packets, samples):
        if not self._block:
            self._block_start = self._time_of(self._index)
        self._block.append((piece, samples))
        self._block_packets += packets
        self._index += samples
        self.stats["samples"] += samples
        if self._block_packets >= self.packets_per_block:
            self._emit_block()

    def _time_of(self, index):
        return self._timebase.time_of(index)

    def _emit_block(self):
        block, self._block = self._block, []
        self._block_packets = 0
        if not block or self.ended:
            return
        # One output array per chunk, each piece decoded straight into it.
        data = np.empty(sum(samples for _, samples in block), np.complex64)
        position = 0
        for piece, samples in block:
            target = data[position:position + samples]
            if isinstance(piece, vrt.DataRun):
                piece.samples(out=target)
            else:
                vrt.decode_payload(piece, "I14Q14", out=target)
            position += samples
        self.emit(data, self._block_start, self._time_of(self._index),
                  self._meta["sample_rate"], self._meta)
