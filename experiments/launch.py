"""Device choice shared by the experiment scripts, and the process-group set-up of the torchrun scripts
(``examples/distributed_*.py``)."""

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


def parse_device(text, option="--device"):
    """The torch device a command line names, refused with ``ValueError`` naming ``option`` if it cannot be used here.

    Checked before any data is generated or any run is claimed, so that ``--device cuda`` on a machine without
    CUDA fails at once with a sentence, not deep in a worker after minutes of set-up.
    """
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"{option} must be a torch device such as 'cpu' or 'cuda', got {text!r} ({err})") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{option} {text}: torch finds no CUDA device on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"{option} {text}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise ValueError(f"{option} must be 'cpu' or a CUDA device ('cuda', 'cuda:0', ...), got {text!r}")
    return device
