"""Reads answers of the Engine API off the wire, through the Docker SDK for Python's
low-level client, and prints them as JSON so the Rust test compares two engines.

Usage: wire_check.py exec CONTAINER      (exec output bytes for each create/start Tty)
       wire_check.py distribution NAME   (GET /distribution/NAME/json)
       wire_check.py update CONTAINER    (update_container, then what inspect shows)
       wire_check.py df -                (the shape of df(): parts and row keys)
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


def update(api, container):
    answer = api.update_container(
        container,
        mem_limit="96m",
        memswap_limit="192m",
        cpu_shares=256,
        restart_policy={"Name": "on-failure", "MaximumRetryCount": 2},
    )
    h = api.inspect_container(container)["HostConfig"]
    keys = ["Memory", "MemorySwap", "CpuShares", "RestartPolicy"]
    return {"answer": answer, "HostConfig": {k: h[k] for k in keys}}


def df_shape(api):
    d = api.df()
    rows = {}
    for part in ("Images", "Containers", "Volumes"):
        rows[part] = sorted({k for row in (d.get(part) or []) for k in row})
    return {"parts": sorted(d), "rows": rows}


def main():
    api = docker.APIClient(base_url=os.environ["DOCKER_HOST"], version="1.41")
    what, arg = sys.argv[1], sys.argv[2]
    if what == "exec":
        print(json.dumps(exec_bytes(api, arg), sort_keys=True))
    elif what == "distribution":
        print(json.dumps(api.inspect_distribution(arg), sort_keys=True))
    elif what == "update":
        print(json.dumps(update(api, arg), sort_keys=True))
    elif what == "df":
        print(json.dumps(df_shape(api), sort_keys=True))
    else:
        sys.exit("unknown check " + what)


if __name__ == "__main__":
    main()
