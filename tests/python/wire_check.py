"""Reads answers of the Engine API off the wire, through the Docker SDK for Python's
low-level client, and prints them as JSON so the Rust test compares two engines.

Usage: wire_check.py exec CONTAINER      (exec output bytes for each create/start Tty)
       wire_check.py distribution NAME   (GET /distribution/NAME/json)
DOCKER_HOST names the engine.
"""

import base64
import json
import os
import socket
import sys

import docker


def read_all(sock):
    """Everything the hijacked exec stream sends until the server closes it."""
    raw = sock._sock if hasattr(sock, "_sock") else sock
    raw.settimeout(20)
    chunks = []
    while True:
        try:
            data = raw.recv(65536)
        except socket.timeout:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def exec_bytes(api, container):
    out = {}
    # Output and error apart in time, so an unframed stream has one order.
    cmd = ["sh", "-c", "echo out; sleep 0.3; echo err >&2"]
    for create_tty in (False, True):
        for start_tty in (False, True):
            e = api.exec_create(container, cmd, tty=create_tty)
            sock = api.exec_start(e["Id"], tty=start_tty, socket=True)
            data = read_all(sock)
            sock.close()
            key = "create_tty=%s,start_tty=%s" % (create_tty, start_tty)
            out[key] = base64.b64encode(data).decode()
    return out


def main():
    api = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="1.41")
    what, arg = sys.argv[1], sys.argv[2]
    if what == "exec":
        print(json.dumps(exec_bytes(api, arg), sort_keys=True))
    elif what == "distribution":
        print(json.dumps(api.inspect_distribution(arg), sort_keys=True))
    else:
        sys.exit("unknown check " + what)


if __name__ == "__main__":
    main()
