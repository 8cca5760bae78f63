"""No one joins without the job token (dtrain/distributed/auth.py): a rogue client that
connects to a running job's data sockets and store and sends frames is refused, and the job
does not notice; across hosts the traffic is encrypted (CURVE)."""
import os
import socket
import time

import numpy as np
import pytest
import zmq

from benchmarks.p2p import outside_address
from multiproc import run_ranks

TOKEN = "test-token-3f9a1c"


def wait_for(path, timeout=20):
    end = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.02)


def victim(rank, world, tmp):
    """Rank 1 waits for rank 0's message with tag 7 while the rogue sends one 'from rank 0'."""
    import dtrain.distributed as dist
    dist.init_process_group("gloo")
    engine = dist.group.WORLD.engine
    with open(os.path.join(tmp, f"addr{rank}.tmp"), "w") as f:
        f.write(engine.address)
    os.rename(os.path.join(tmp, f"addr{rank}.tmp"), os.path.join(tmp, f"addr{rank}"))
    got = np.zeros(4, np.float32)
    work = dist.irecv(got, src=0, tag=7) if rank == 1 else None
    wait_for(os.path.join(tmp, "rogue-done"))
    if rank == 0:
        dist.send(np.full(4, 42.0, np.float32), dst=1, tag=7)
    else:
        work.wait()
    t = np.full(3, rank + 1.0)
    dist.all_reduce(t)
    dist.destroy_process_group()
    return got.tolist(), t.tolist()


def rogue_frames(address):
    """A rank-0-looking P2P message with tag 7 for rank 1's posted receive: what a rogue
    would inject."""
    from dtrain.distributed import wire
    head = wire.encode(wire.P2P, 0, 0, 7, 0, 0, np.dtype(np.float32), (4,), -1, 16)
    return [head, np.full(4, -1.0, np.float32).tobytes()]


def attack(address, ctx):
    """Connect three ways without the token and send; return the handshake events seen."""
    events = []
    host, port = address.rsplit(":", 1)
    for creds in (None, b"wrong-token"):
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.identity = b"0"  # pretends to be rank 0
        if creds is not None:
            sock.plain_username, sock.plain_password = b"dtrain", creds
        monitor = sock.get_monitor_socket()
        sock.connect(address)
        for _ in range(5):
            sock.send_multipart(rogue_frames(address), zmq.NOBLOCK)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            if monitor.poll(50):
                events.append(zmq.utils.monitor.recv_monitor_message(monitor)["event"])
        sock.disable_monitor()
        monitor.close()
        sock.close()
    with socket.create_connection((host.split("//")[1], int(port)), timeout=2) as raw:
        raw.sendall(b"\xff" + os.urandom(4096))  # not even ZMTP
    return events


@pytest.mark.timeout(60)
def test_a_rogue_client_without_the_token_is_refused_and_the_job_goes_on(tmp_path):
    import threading
    results = {}

    def job():
        results["ranks"] = run_ranks(victim, 2, str(tmp_path), timeout=50,
                                     env={"DTRAIN_JOB_TOKEN": TOKEN})
    thread = threading.Thread(target=job)
    thread.start()
    ctx = zmq.Context()
    try:
        wait_for(str(tmp_path / "addr1"))
        events = attack((tmp_path / "addr1").read_text(), ctx)
    finally:
        (tmp_path / "rogue-done").write_text("")
        ctx.term()
        thread.join(55)
    assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in events, "a client without the token got in"
    assert zmq.EVENT_HANDSHAKE_FAILED_AUTH in events
    (got0, sum0), (got1, sum1) = results["ranks"]
    assert got1 == [42.0] * 4, f"rank 1 received {got1}, not rank 0's message"
    assert sum0 == sum1 == [3.0] * 3


def test_the_store_refuses_requests_without_the_token():
    from dtrain.distributed import DistStoreError, TCPStore
    server = TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False,
                      token=TOKEN.encode())
    try:
        server.set("secret", b"value")
        for token in (None, b"guess"):
            with pytest.raises(DistStoreError, match="token"):
                TCPStore("127.0.0.1", server.port, is_master=False, timeout=2,
                         wait_for_workers=False, token=token)
        assert server.get("secret") == b"value"
    finally:
        server.close()


def encrypted_job(rank, world):
    import dtrain.distributed as dist
    dist.init_process_group("gloo")
    engine = dist.group.WORLD.engine
    curve = engine._router.curve_server
    t = np.full(1000, rank + 1.0)
    dist.all_reduce(t)
    dist.send(t, dst=1 - rank) if rank == 0 else dist.recv(t, src=0)
    dist.destroy_process_group()
    return curve, engine.address, float(t[0])


@pytest.mark.timeout(60)
def test_across_hosts_the_data_sockets_use_curve_and_refuse_plain_clients():
    address = outside_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to stand for another host")
    results = run_ranks(encrypted_job, 2, timeout=50,
                        env={"DTRAIN_JOB_TOKEN": TOKEN, "MASTER_ADDR": address,
                             "DTRAIN_SHM": "0"})
    for curve, data_address, value in results:
        assert curve == 1 and address in data_address and value == 3.0


def no_token(rank, world):
    import dtrain.distributed as dist
    try:
        dist.init_process_group("gloo", timeout=10)
    except dist.DistError as e:
        return str(e)
    dist.destroy_process_group()
    return "joined"


@pytest.mark.timeout(60)
def test_a_job_across_hosts_without_a_token_refuses_to_start():
    address = outside_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to stand for another host")
    env = {"MASTER_ADDR": address, "DTRAIN_JOB_TOKEN": ""}
    for message in run_ranks(no_token, 2, timeout=50, env=env):
        assert "DTRAIN_JOB_TOKEN" in message
