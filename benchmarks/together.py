"""
Processes started together, for the benchmarks' bounds: what the machine
gives several plain processes doing the same work at once.
"""

import json
import subprocess


def run_together(commands, env):
    """
    Start every command of ``commands`` (argument lists) at once, each a
    fresh process that warms up, prints ``ready``, waits for a line on its
    standard input, does its share and prints a JSON line last; tell them
    all to go once each is ready, and return their JSON lines in order.
    Raise ``RuntimeError`` if one does not start or fails; none is left
    running.
    """
    running = [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, env=env)
               for command in commands]
    try:
        for process in running:
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("a process started together did not start")
        for process in running:
            process.stdin.write("go\n")
            process.stdin.flush()
        found = []
        for process in running:
            output, _ = process.communicate()
            if process.returncode:
                raise RuntimeError("a process started together failed")
            found.append(json.loads(output.strip().splitlines()[-1]))
        return found
    finally:
        for process in running:
            if process.poll() is None:
                process.kill()
                process.wait()
