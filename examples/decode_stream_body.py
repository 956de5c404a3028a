"""
Decode the body of a stream answer with nothing but msgpack and numpy:
what a client in any language does with its own msgpack library.

    python3 decode_stream_body.py body.bin

Each chunk is a msgpack map: k (kind), s and e (start and end, integer ns
of device time), q (seq), r (rate, rows per second), m (meta, a map) and
d = [dtype, shape, raw little-endian bytes of the array].
"""

import sys

import msgpack
import numpy as np


def chunks(body):
    """
    Each chunk of a body as (its map, its array).
    """
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=max(len(body), 1))
    unpacker.feed(body)
    for item in unpacker:
        dtype, shape, buffer = item["d"]
        yield item, np.frombuffer(buffer, dtype=dtype).reshape(shape)


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as file:
        body = file.read()
    for item, data in chunks(body):
        print(f"seq {item['q']} {item['k']} {data.dtype}{list(data.shape)} "
              f"[{item['s']}, {item['e']}) ns rate {item['r']:g} "
              f"first {data[0]:.6g} centre {item['m'].get('center_frequency', 0):g} Hz")
