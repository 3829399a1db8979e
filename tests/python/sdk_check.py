"""The Docker SDK for Python (Debian's python3-docker) against Berth.

Run by tests/tests/python_sdk.rs with DOCKER_HOST pointing at a test server and
BERTH_REGISTRY at its registry (HOST:PORT). Each check prints a line; the first
failed assertion ends the script with a traceback (the Rust test shows both).
"""

import io
import os
import socket
import sys
import time
import urllib.request

import docker
from docker.errors import APIError, ImageNotFound, NotFound

REGISTRY = os.environ["BERTH_REGISTRY"]
LABEL = {"berth.test": "sdk"}


def step(name):
    print(f"== {name}", flush=True)


def eventually(what, f, timeout=20):
    end = time.time() + timeout
    while True:
        v = f()
        if v:
            return v
        assert time.time() < end, f"timed out waiting for {what}"
        time.sleep(0.2)


def fetch(url):
    try:
        return urllib.request.urlopen(url, timeout=2).read()
    except OSError:
        return None


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


client = docker.from_env()
api = client.api

step("ping, version, info")
assert client.ping() is True
v = client.version()
assert v["ApiVersion"] and v["Os"] == "linux", v
assert "Containers" in client.info()

step("images: get, tag, push to Berth's registry, remove, pull back, list")
bb = client.images.get("busybox")
assert bb.id.startswith("sha256:"), bb.id
assert "busybox:latest" in bb.tags, bb.tags
repo = f"{REGISTRY}/sdk/busybox"
assert bb.tag(repo, "v1") is True
assert f"{repo}:v1" in client.images.get(bb.id).tags
out = client.images.push(repo, tag="v1")
assert '"error"' not in out, out
client.images.remove(f"{repo}:v1")
try:
    client.images.get(f"{repo}:v1")
    raise AssertionError("the tag is still there after remove")
except ImageNotFound:
    pass
pulled = client.images.pull(repo, tag="v1")
assert pulled.id == bb.id, (pulled.id, bb.id)
# The one image, with all its tags (the pull gave busybox's id another name).
found = client.images.list(name=repo)
assert [i.id for i in found] == [bb.id] and f"{repo}:v1" in found[0].tags, found
assert client.images.list(filters={"reference": "busybox"})[0].id == bb.id
ins = api.inspect_image("busybox")
assert ins["Id"] == bb.id and ins["Config"]["Cmd"] == ["sh"], ins["Config"]

step("images: build from a small context, with a build arg and labels")
dockerfile = (
    b"FROM busybox\n"
    b"ARG WHO=nobody\n"
    b"LABEL made.by=sdk\n"
    b"RUN echo hello-$WHO > /greeting\n"
    b'CMD ["cat", "/greeting"]\n'
)
built, logs = client.images.build(
    fileobj=io.BytesIO(dockerfile), tag="sdk-built:1", buildargs={"WHO": "sdk"}, rm=True
)
text = "".join(chunk.get("stream", "") for chunk in logs)
assert "Successfully built" in text, text
assert "sdk-built:1" in built.tags, built.tags
assert built.labels.get("made.by") == "sdk", built.labels
assert client.containers.run("sdk-built:1", remove=True) == b"hello-sdk\n"

step("containers: run, not detached (output back, exit status checked)")
assert client.containers.run("busybox", ["echo", "hi"], remove=True) == b"hi\n"
try:
    client.containers.run("busybox", ["sh", "-c", "echo oops >&2; exit 3"], remove=True)
    raise AssertionError("a failing command did not raise")
except docker.errors.ContainerError as e:
    assert e.exit_status == 3, e.exit_status
    assert b"oops" in (e.stderr or b""), e.stderr

step("volumes: create, list, inspect")
vol = client.volumes.create("sdk-data", labels=LABEL)
assert vol.name == "sdk-data" and vol.attrs["Labels"] == LABEL, vol.attrs
assert [v.name for v in client.volumes.list(filters={"label": "berth.test=sdk"})] == ["sdk-data"]
assert client.volumes.get("sdk-data").attrs["Driver"] == "local"

step("containers: detached, with env, ports, volumes, labels")
port = free_port()
web = client.containers.run(
    "busybox",
    ["sh", "-c", "mkdir -p /www && echo page-$WHO > /www/index.html && echo ready && exec httpd -f -p 80 -h /www"],
    detach=True,
    name="sdk-web",
    environment={"WHO": "sdk"},
    ports={"80/tcp": ("127.0.0.1", port)},
    volumes={"sdk-data": {"bind": "/data", "mode": "rw"}},
    labels=LABEL,
)
web.reload()
assert web.status == "running", web.status
assert web.attrs["Config"]["Labels"] == LABEL
assert web.ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}, web.ports
eventually("the web container's log", lambda: b"ready" in web.logs())
body = eventually("the page through the published port", lambda: fetch(f"http://127.0.0.1:{port}/"))
assert body == b"page-sdk\n", body

step("containers: exec_run, logs (whole and streamed)")
code, out = web.exec_run(["sh", "-c", "echo $WHO > /data/f && cat /data/f"])
assert (code, out) == (0, b"sdk\n"), (code, out)
code, out = web.exec_run("sh -c 'exit 4'")
assert code == 4, code
code, out = web.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
assert out == (b"out\n", b"err\n"), out
talker = client.containers.run(
    "busybox", ["sh", "-c", "for i in 1 2 3; do echo line$i; done"], detach=True, labels=LABEL
)
assert talker.wait()["StatusCode"] == 0
assert talker.logs() == b"line1\nline2\nline3\n", talker.logs()
assert talker.logs(tail=1) == b"line3\n"
streamed = b"".join(talker.logs(stream=True))
assert streamed == b"line1\nline2\nline3\n", streamed
follow = client.containers.run(
    "busybox", ["sh", "-c", "echo a; sleep 1; echo b"], detach=True, labels=LABEL
)
lines = list(follow.logs(stream=True, follow=True))
assert b"".join(lines) == b"a\nb\n", lines

step("containers: list with filters")
running = client.containers.list(filters={"label": "berth.test=sdk"})
assert [c.name for c in running] == ["sdk-web"], running
everything = client.containers.list(all=True, filters={"label": "berth.test=sdk", "status": "exited"})
assert {c.id for c in everything} == {talker.id, follow.id}, everything
# Several labels: every one must match (compose finds its containers this way).
both = client.containers.list(all=True, filters={"label": ["berth.test=sdk", "other=x"]})
assert both == [], both
assert [c["Id"] for c in api.containers(filters={"label": ["berth.test=sdk", "berth.test"]})] == [web.id]
assert client.containers.list(filters={"name": "sdk-web"})[0].id == web.id
assert client.containers.get("sdk-web").id == web.id

step("containers: stop, kill, wait, remove")
web.stop(timeout=1)
web.reload()
assert web.status == "exited", web.status
sleeper = client.containers.run("busybox", ["sleep", "600"], detach=True, labels=LABEL)
sleeper.kill()
assert sleeper.wait()["StatusCode"] == 137
sleeper.reload()
assert sleeper.status == "exited"
for c in (web, talker, follow, sleeper):
    c.remove()
try:
    client.containers.get("sdk-web")
    raise AssertionError("sdk-web is still there")
except NotFound:
    pass
alive = client.containers.run("busybox", ["sleep", "600"], detach=True)
try:
    alive.remove()
    raise AssertionError("removing a running container without force worked")
except APIError as e:
    assert e.status_code == 409, e
alive.remove(force=True)

step("the volume kept what the container wrote")
out = client.containers.run("busybox", ["cat", "/data/f"], volumes=["sdk-data:/data"], remove=True)
assert out == b"sdk\n", out
vol.remove()
assert client.volumes.list(filters={"label": "berth.test=sdk"}) == []

step("networks: create, two containers resolving each other, connect, remove")
net = client.networks.create("sdk-net", driver="bridge", labels=LABEL)
assert client.networks.get(net.id).name == "sdk-net"
assert [n.name for n in client.networks.list(names=["sdk-net"])] == ["sdk-net"]
assert [n.name for n in client.networks.list(filters={"label": ["berth.test=sdk", "berth.test"]})] == ["sdk-net"]
assert client.networks.list(filters={"label": ["berth.test=sdk", "other"]}) == []
server = client.containers.run(
    "busybox",
    ["sh", "-c", "mkdir /www && echo from-server > /www/index.html && exec httpd -f -p 80 -h /www"],
    detach=True,
    name="sdk-server",
    network="sdk-net",
)
out = client.containers.run(
    "busybox",
    ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do wget -qO- http://sdk-server/ && exit; sleep 0.3; done; exit 1"],
    network="sdk-net",
    remove=True,
)
assert out == b"from-server\n", out
# A container made elsewhere, then connected with an alias: reachable by both names.
late = client.containers.run("busybox", ["sleep", "600"], detach=True, name="sdk-late", network_disabled=False)
net.connect(late, aliases=["late-alias"])
net.reload()
assert {c.name for c in net.containers} == {"sdk-server", "sdk-late"}, net.containers
code, out = server.exec_run(["nslookup", "late-alias"])
assert code == 0, out
code, out = late.exec_run(["wget", "-qO-", "http://sdk-server/"])
assert (code, out) == (0, b"from-server\n"), (code, out)
net.disconnect(late)
net.reload()
assert [c.name for c in net.containers] == ["sdk-server"], net.containers
server.remove(force=True)
late.remove(force=True)
net.remove()
try:
    client.networks.get("sdk-net")
    raise AssertionError("sdk-net is still there")
except NotFound:
    pass

step("networks: null pool fields, a MAC address, aliases at the SDK's API version")
# IPAMPool sends IPRange, Gateway and AuxiliaryAddresses as null.
ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.233.0.0/24")])
net = client.networks.create("sdk-pool", ipam=ipam, labels=LABEL)
assert net.attrs["IPAM"]["Config"] == [{"Subnet": "10.233.0.0/24"}], net.attrs["IPAM"]
# mac_address goes in Config.MacAddress (API < 1.44).
c = client.containers.run(
    "busybox", ["sleep", "600"], detach=True, name="sdk-mac", network="sdk-pool", mac_address="02:42:0a:e9:00:77"
)
code, out = c.exec_run(["cat", "/sys/class/net/eth0/address"])
assert (code, out) == (0, b"02:42:0a:e9:00:77\n"), (code, out)
c.reload()
ep = c.attrs["NetworkSettings"]["Networks"]["sdk-pool"]
assert ep["MacAddress"] == "02:42:0a:e9:00:77" and ep["IPAddress"].startswith("10.233.0."), ep
# The SDK speaks the server's version: the aliases asked for (none here), and the
# names the DNS answers to (API 1.44+).
assert ep["Aliases"] is None and ep["DNSNames"] == ["sdk-mac", c.id[:12]], ep
# At dockerd 20.10's API 1.41 the short id is among a user network's aliases.
old = docker.from_env(version="1.41").api.inspect_container(c.id)
assert old["NetworkSettings"]["Networks"]["sdk-pool"]["Aliases"] == [c.id[:12]], old["NetworkSettings"]
# An endpoint entry may be null, as the SDK's own NetworkingConfig allows.
low = api.create_container(
    "busybox", ["true"], host_config=api.create_host_config(network_mode="sdk-pool"),
    networking_config={"EndpointsConfig": {"sdk-pool": None}},
)
api.remove_container(low["Id"])
c.remove(force=True)
net.remove()

step("low-level APIClient: create_container, start, wait, logs, exec, inspect, remove")
host_config = api.create_host_config(
    port_bindings={8080: ("127.0.0.1", None)}, binds={"sdk-low": {"bind": "/v", "mode": "rw"}}
)
c = api.create_container(
    "busybox",
    ["sh", "-c", "echo $A > /v/a; echo started; exec httpd -f -p 8080 -h /v"],
    environment=["A=low"],
    ports=[8080],
    host_config=host_config,
    labels=LABEL,
    name="sdk-low",
)
cid = c["Id"]
api.start(cid)
info = api.inspect_container(cid)
assert info["State"]["Running"] is True and info["Name"] == "/sdk-low", info["State"]
bound = api.port(cid, 8080)
assert bound and bound[0]["HostIp"] == "127.0.0.1" and int(bound[0]["HostPort"]) > 0, bound
page = eventually("the low-level container's page", lambda: fetch(f"http://127.0.0.1:{bound[0]['HostPort']}/a"))
assert page == b"low\n", page
assert b"started" in api.logs(cid)
ex = api.exec_create(cid, ["cat", "/v/a"])
assert api.exec_start(ex["Id"]) == b"low\n"
assert api.exec_inspect(ex["Id"])["ExitCode"] == 0
assert [x["Id"] for x in api.containers(filters={"label": "berth.test=sdk"})] == [cid]
api.stop(cid, timeout=1)
assert api.wait(cid)["StatusCode"] in (0, 137, 143)
api.remove_container(cid, v=True)
api.remove_volume("sdk-low")
assert api.containers(all=True, filters={"label": "berth.test=sdk"}) == []

step("images: remove what the script made")
client.images.remove("sdk-built:1")
client.images.remove(f"{repo}:v1")
left = [t for i in client.images.list() for t in i.tags]
assert "sdk-built:1" not in left and f"{repo}:v1" not in left, left
assert "busybox:latest" in left, left

print("sdk-check: all passed", flush=True)
sys.exit(0)
