"""Data-parallel evaluation under torchrun (DESIGN §8).

`torchrun --nproc-per-node N -m molmo_eval --tasks ...` (or the console script under torchrun)
starts N processes; each evaluates a share of each task's samples (whole images at a time, so
that the questions about one image stay together: `runner.shard_indices`), rank 0 gathers the shares,
restores the original order and aggregates, so the record equals a single process's. Uses
torch.distributed with gloo on CPU and nccl on GPU; all ranks share the SQLite response cache
(WAL mode and busy timeouts make concurrent writers safe; keys are unique, so nothing is
duplicated). Only rank 0 shows progress and writes the run directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass
class DistGroup:
    rank: int
    world: int
    local_rank: int
    backend: str
    owned: bool = True  # this module initialized the process group (so it also destroys it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` on rank 0 (in rank order); None elsewhere."""
        import torch.distributed as dist

        out: list[Any] | None = [None] * self.world if self.rank == 0 else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def close(self) -> None:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def from_env(device: str | None) -> DistGroup | None:
    """The process group when launched by torchrun with more than one process, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    try:
        import torch.distributed as dist
    except ImportError:
        from molmo_eval.core.errors import MissingDependency

        raise MissingDependency("torch", "model", "data-parallel evaluation under torchrun") from None
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device is not None and device.startswith("cuda") else "gloo"
    owned = not dist.is_initialized()
    if owned:
        if backend == "nccl":
            import torch

            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistGroup(rank=rank, world=world, local_rank=local, backend=backend, owned=owned)


def rank_device(device: str | None, group: DistGroup | None) -> str | None:
    """``cuda`` becomes ``cuda:<local rank>`` so each process drives its own GPU."""
    if group is not None and device == "cuda":
        return f"cuda:{group.local_rank}"
    return device
