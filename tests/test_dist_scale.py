"""What a large job needs from one process: sockets and file descriptors for every peer."""
import threading

import pytest


@pytest.mark.timeout(60)
def test_an_engine_connects_to_500_peers():
    # each peer takes three ZeroMQ sockets; libzmq's default of 1,023 per context stopped at
    # 340 peers before the engine sized its context by the world size
    from dtrain.distributed.transport import Engine
    world = 500
    engine = Engine(0, "127.0.0.1", None, world)
    try:
        connected, done = [], threading.Event()
        engine.call(engine.connect, {r: f"tcp://127.0.0.1:{20000 + r}" for r in range(1, world)})
        engine.call(lambda: (connected.append(len(engine._peers)), done.set()))
        assert done.wait(30)
        assert connected == [world - 1]
    finally:
        engine.close()
