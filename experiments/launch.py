"""Process-group set-up shared by the torchrun scripts (``examples/distributed_*.py``)."""

import datetime
import os
import socket

import torch
import torch.distributed as dist


def init_distributed(backend):
    """Join the process group torchrun describes; without torchrun, a group of one process.

    Returns
    -------
    (rank, world_size, device, backend)
    """
    if "RANK" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    local = int(os.environ["LOCAL_RANK"])
    if backend == "nccl":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
        torch.set_num_threads(1)  # one core per process on a small CPU machine
    dist.init_process_group(backend, timeout=datetime.timedelta(minutes=5))
    return dist.get_rank(), dist.get_world_size(), device, backend
