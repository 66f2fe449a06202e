"""One job on several processes (GPUs, or CPU processes on the gloo backend): data parallelism with
torch.distributed.

The training child (rank 0) starts the other ranks itself, as `python -m peftcore train --spec S --rank R --port P`
children that die with it, rather than through torchrun: the runner supervises one process group as it always
has (SIGTERM means "checkpoint and stop", a dead runner kills the child), and only rank 0 talks to it (events on
stdout, checkpoints, the adapter). Every rank loads the same model with the same seed, so the weights start
equal; each optimizer step's rows are split between the ranks and the gradients summed (all_reduce), which
is the whole batch's gradient: the adapter equals the single-process one up to float summation order
(tests/peftcore/test_distributed.py). Evaluation runs whole on every rank; whether to stop early is rank 0's
decision, sent to all (agree), as is a stop request, with each step, so no rank leaves a collective behind.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

COLLECTIVE_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world: int = 1
    device: str = "cpu"  # where the collectives' tensors live: NCCL takes CUDA tensors only

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def shard(self, rows: list[int]) -> list[int]:
        """This rank's share of a batch's rows."""
        return rows[self.rank :: self.world] if self.active else rows

    def sum(self, values: list[float]) -> list[float]:
        if not self.active:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def sum_gradients(self, parameters: list[torch.nn.Parameter]) -> None:
        """Each trainable parameter's gradient summed over the ranks, in one all_reduce."""
        if not self.active or not parameters:
            return
        for parameter in parameters:
            if parameter.grad is None:  # a rank whose share of the batch was empty, or a branch it never used
                parameter.grad = torch.zeros_like(parameter)
        flat = torch.cat([parameter.grad.reshape(-1) for parameter in parameters])
        dist.all_reduce(flat)
        offset = 0
        for parameter in parameters:
            size = parameter.grad.numel()
            parameter.grad.copy_(flat[offset : offset + size].view_as(parameter.grad))
            offset += size

    def agree(self, flag: bool) -> bool:
        """Rank 0's flag, on every rank (a stop request reaches the runner's child only)."""
        if not self.active:
            return flag
        tensor = torch.tensor([1 if flag and self.main else 0], device=self.device)
        dist.all_reduce(tensor)
        return bool(tensor.item())


def join(rank: int, world: int, port: int, device) -> Group:
    """This process's place in a group of `world` (rank 0 listens on `port` of this host)."""
    if world <= 1:
        return Group()
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    # Ranks meet at every step; a rank that died leaves the others waiting this long at most, not NCCL's default.
    dist.init_process_group(
        backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world, timeout=COLLECTIVE_TIMEOUT
    )
    return Group(rank, world, str(device))


def leave() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_helpers(spec: dict, world: int, port: int, folder: Path) -> list[subprocess.Popen]:
    """Ranks 1..world-1 as children of this process (they die with it: PEFTCORE_PARENT_PID), each with the same
    spec; their events are dropped and their stderr joins this process's."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    spec_path = folder / "spec-ranks.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    env = {**os.environ, "PEFTCORE_PARENT_PID": str(os.getpid()), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "peftcore", "train", "--spec", str(spec_path), "--port", str(port)]
    return [
        subprocess.Popen([*command, "--rank", str(rank)], stdout=subprocess.DEVNULL, env=env)
        for rank in range(1, world)
    ]


def device_of(rank: int):
    """Rank r trains on GPU r (the worker's CUDA_VISIBLE_DEVICES says which GPUs those are), else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", rank % torch.cuda.device_count())
    return None
