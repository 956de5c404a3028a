"""
VRT parser throughput: I14Q14 data packets read from a real loopback TCP
socket, cut into packets and decoded to complex64, against a raw read of
the same bytes from the same kind of socket in the same run.

    python benchmarks/vrt.py [--megabytes 256] [--samples-per-packet 8192]

The last line is the headline: parser MB/s of payload, and its ratio to the
raw read.  Goal: >= 500 MB/s (a WSA5000 at full rate is 125 MSa/s × 4 B).
"""

import argparse
import os
import socket
import sys
import multiprocessing
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pyrf_blocks.instruments import vrt  # noqa: E402

#: Bytes per read: what the analyzer source's data connection reads at a
#: time (its transport's bufferSize).
READ_SIZE = 1 << 20


def build_stream(megabytes, samples_per_packet):
    rng = np.random.default_rng(0)
    samples = (rng.standard_normal(2 * samples_per_packet).astype(np.float32) * 0.1)
    payload = vrt.encode_payload(samples.view(np.complex64))
    packets = []
    count = max(1, int(megabytes * 1e6 // len(payload)))
    for index in range(count):
        packets.append(vrt.build_data_packet(payload, count=index, integer_seconds=index,
                                             trailer=vrt.Trailer(valid_data=True)))
    context = vrt.build_context_packet(vrt.STREAM_DIGITIZER, {"reference_level": 0.0})
    return context + b"".join(packets), count * len(payload)


def serve(blob, connections):
    """
    Send ``blob`` once to each of ``connections`` clients from a child
    process (as an instrument would: another program, no shared GIL);
    return the port and the process.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(connections)

    def run():
        view = memoryview(blob)
        for _ in range(connections):
            connection, _ = listener.accept()
            connection.sendall(view)
            connection.close()
        listener.close()

    port = listener.getsockname()[1]
    sender = multiprocessing.get_context("fork").Process(target=run, daemon=True)
    sender.start()
    listener.close()
    return port, sender


def read_raw(port):
    with socket.create_connection(("127.0.0.1", port)) as connection:
        start = time.perf_counter()
        total = 0
        while True:
            data = connection.recv(READ_SIZE)
            if not data:
                break
            total += len(data)
        return total, time.perf_counter() - start


def decode_block(pieces):
    """
    One chunk of the analyzer source: every piece decoded into one array.
    """
    counts = [len(piece) * piece.samples_per_packet if isinstance(piece, vrt.DataRun)
              else len(piece.payload) // 4 for piece in pieces]
    out = np.empty(sum(counts), np.complex64)
    position = 0
    for piece, count in zip(pieces, counts):
        target = out[position:position + count]
        if isinstance(piece, vrt.DataRun):
            piece.samples(out=target)
        else:
            vrt.decode_payload(piece.payload, out=target)
        position += count
    return out


def read_parsed(port, packets_per_block):
    """
    What the analyzer source does: cut the stream into packets (runs of
    regular packets at once) and decode each block of ``packets_per_block``
    packets into one complex64 array.
    """
    parser = vrt.VRTStreamParser(stream_ids=vrt.THINKRF_STREAMS)
    payload = 0
    block, in_block = [], 0
    with socket.create_connection(("127.0.0.1", port)) as connection:
        start = time.perf_counter()
        while True:
            data = connection.recv(READ_SIZE)
            if not data:
                break
            for item in parser.feed(data, runs=True):
                while item is not None and item.is_data:
                    if isinstance(item, vrt.DataRun):
                        piece, item = item.split(packets_per_block - in_block)
                    else:
                        piece, item = item, None
                    block.append(piece)
                    in_block += len(piece) if isinstance(piece, vrt.DataRun) else 1
                    if in_block == packets_per_block:
                        payload += decode_block(block).nbytes // 2  # → I14Q14 bytes
                        block, in_block = [], 0
        if block:
            payload += decode_block(block).nbytes // 2
        elapsed = time.perf_counter() - start
    assert parser.stats["garbage_bytes"] == 0 and parser.buffered == 0
    return payload, elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=float, default=256.0)
    parser.add_argument("--samples-per-packet", type=int, default=8192)
    parser.add_argument("--packets-per-block", type=int, default=16,
                        help="packets decoded together, as the source's chunks (default 16)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    blob, payload_bytes = build_stream(args.megabytes, args.samples_per_packet)
    print(f"stream: {len(blob) / 1e6:.1f} MB, {payload_bytes / 1e6:.1f} MB of I14Q14 payload "
          f"in packets of {args.samples_per_packet} samples, "
          f"decoded {args.packets_per_block} packets at a time")
    port, sender = serve(blob, 2 * args.repeat)
    raw_rates, parsed_rates = [], []
    for _ in range(args.repeat):
        total, elapsed = read_raw(port)
        assert total == len(blob)
        raw_rates.append(total / elapsed / 1e6)
        payload, elapsed = read_parsed(port, args.packets_per_block)
        assert payload == payload_bytes
        parsed_rates.append(payload / elapsed / 1e6)
        print(f"  raw read {raw_rates[-1]:8.0f} MB/s   parse + decode {parsed_rates[-1]:8.0f} "
              f"MB/s of payload")
    sender.join(timeout=10)
    raw, parsed = max(raw_rates), max(parsed_rates)
    print(f"VRT I14Q14 parse + decode from a socket: {parsed:.0f} MB/s of payload "
          f"(raw socket read {raw:.0f} MB/s; ratio {parsed / raw:.2f})")


if __name__ == "__main__":
    main()
