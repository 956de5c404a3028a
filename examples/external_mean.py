"""
An external calculation service (seed 001): the running mean of a variable,
over plain HTTP with nothing but Python's standard library — the contract is
three JSON requests, so the same service could be written in any language.

    python examples/external_mean.py [--port 0]

It prints "listening on http://127.0.0.1:PORT" and serves

- POST /process        {"var", "time", "args"}          -> {"result"}
- POST /process_state  {"var", "time", "state", "args"} -> {"state", "result"}
- POST /get_state      {"var", "time"}                  -> {"state"}

where args is {"times": [...], "values": [...]} and the state of a variable
is {"count": n, "sum": s}.  /process and /get_state answer 409 for a
variable it has no state for (a fresh or restarted service), and the
caller (pyrf_blocks' external_calculation block) then rebuilds the state
here with /process_state.
"""

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATES = {}
LOCK = threading.Lock()


def step(state, args):
    """The new state after ``args``' values, and the mean so far."""
    state = dict(state or {"count": 0, "sum": 0.0})
    values = [float(v) for v in args["values"]]
    state["count"] += len(values)
    state["sum"] += sum(values)
    return state, state["sum"] / state["count"] if state["count"] else 0.0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep connections open between requests

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > 1 << 20:
            return self.answer(413, {"error": "body too large"})
        try:
            body = json.loads(self.rfile.read(length))
            var = body["var"]
        except (ValueError, KeyError, TypeError):
            return self.answer(400, {"error": "a JSON object with var, time and args"})
        with LOCK:
            if self.path == "/process":
                if var not in STATES:
                    return self.answer(409, {"error": f"no state for {var}"})
                STATES[var], result = step(STATES[var], body["args"])
                return self.answer(200, {"result": result})
            if self.path == "/process_state":
                STATES[var], result = step(body.get("state"), body["args"])
                return self.answer(200, {"state": STATES[var], "result": result})
            if self.path == "/get_state":
                if var not in STATES:
                    return self.answer(409, {"error": f"no state for {var}"})
                return self.answer(200, {"state": STATES[var]})
        return self.answer(404, {"error": f"no request {self.path}"})

    def answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free)")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
