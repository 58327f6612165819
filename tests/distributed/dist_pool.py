"""A pool of gloo worker processes on 127.0.0.1 that run collective tasks sent by the test process.

Starting processes and a process group costs seconds, so the workers start once per test session and each test
(or hypothesis example) sends them a task: every rank runs the same function with its rank and the same arguments,
and the pool returns the per-rank results. Collectives time out after ``TIMEOUT`` seconds and the pool is torn
down (joined, then terminated) at the end of the session.
"""

import datetime
import os
import queue
import socket
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

TIMEOUT = 30  # seconds: a collective, and a task; far above the second or so the tasks take


def free_port():
    """A free TCP port on 127.0.0.1 (bound by the OS, released for the rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, inbox, outbox):
    torch.set_num_threads(1)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=TIMEOUT))
        outbox.put(("ready", rank))
    except Exception:
        outbox.put(("err", traceback.format_exc()))
        return
    while True:
        task = inbox.get()
        if task is None:
            break
        fn, kwargs = task
        try:
            outbox.put(("ok", _detached(fn(rank=rank, world=world, **kwargs))))
        except BaseException:  # noqa: BLE001 - the parent shows the worker's traceback
            outbox.put(("err", f"rank {rank}:\n{traceback.format_exc()}"))
    dist.destroy_process_group()


def _detached(obj):
    # Tensors that require grad cannot cross process boundaries; a failed pickle in the queue's feeder thread
    # would only show up as a timeout.
    if torch.is_tensor(obj):
        return obj.detach()
    if isinstance(obj, dict):
        return {k: _detached(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_detached(v) for v in obj)
    return obj


class GlooPool:
    """``world`` gloo processes on localhost; ``run(fn, **kwargs)`` returns ``[fn(rank=0, ...), fn(rank=1, ...)]``."""

    def __init__(self, world=2):
        self.world = world
        self._start()

    def _start(self):
        ctx = mp.get_context("spawn")
        world = self.world
        port = free_port()
        self.inboxes = [ctx.Queue() for _ in range(world)]
        self.outboxes = [ctx.Queue() for _ in range(world)]
        self.procs = [ctx.Process(target=_worker, args=(r, world, port, self.inboxes[r], self.outboxes[r]), daemon=True)
                      for r in range(world)]
        for p in self.procs:
            p.start()
        for r in range(world):
            status, msg = self._get(r, 60, restart=False)
            if status != "ready":
                self.close()
                raise RuntimeError(f"gloo worker {r} failed to start:\n{msg}")

    def _get(self, r, timeout, restart=True):
        try:
            return self.outboxes[r].get(timeout=timeout)
        except queue.Empty:
            self.close()
            if restart:
                self._start()
            raise TimeoutError(
                f"gloo worker {r} gave no answer within {timeout} s; the pool was shut down (and restarted unless "
                "starting)"
            ) from None

    def run(self, fn, timeout=TIMEOUT + 15, **kwargs):
        """Run ``fn(rank=r, world=world, **kwargs)`` on every rank; re-raise a worker's failure with its traceback."""
        for box in self.inboxes:
            box.put((fn, kwargs))
        out = [self._get(r, timeout) for r in range(self.world)]
        errors = [msg for status, msg in out if status != "ok"]
        if errors:
            # A rank that failed may have left the others inside a collective: start afresh for the next test.
            self.close()
            self._start()
            raise AssertionError("\n".join(errors))
        return [msg for _, msg in out]

    def close(self):
        for box, p in zip(self.inboxes, self.procs):
            if p.is_alive():
                try:
                    box.put(None)
                except (OSError, ValueError):
                    pass
        for p in self.procs:
            p.join(timeout=10)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
