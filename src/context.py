"""Device, execution mode and data-parallel setup for the model-zoo scripts."""
from __future__ import annotations

import logging
import os
import weakref
from dataclasses import dataclass
from types import SimpleNamespace

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from src.config import ConfigError

log = logging.getLogger("tinynet")


@dataclass(frozen=True)
class RunContext:
    device_target: str
    rank: int = 0
    world: int = 1
    amp_level: str = "O0"
    dynamic_loss_scale: bool = False
    data_sink: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_distributed() -> bool:
    """msrun sets MS_WORKER_NUM; the Ascend rank-table launch sets RANK_SIZE."""
    return int(os.environ.get("MS_WORKER_NUM", os.environ.get("RANK_SIZE", "1"))) > 1


def setup_context(cfg: SimpleNamespace) -> RunContext:
    """Set mode and device (before ``init()``, as MindSpore requires), then data parallelism if launched so."""
    device = cfg.device_target  # the config checked it against its choices (and mode, amp_level, ...)
    sink = cfg.data_sink if cfg.data_sink != "auto" else ("off" if device == "CPU" else "on")
    if sink == "on" and device == "CPU":
        raise ConfigError("data_sink on: MindSpore's data sink runs on Ascend and GPU only; on CPU pass --data_sink "
                          "auto (or off): the host loop feeds the step")
    ms.set_context(mode=ms.GRAPH_MODE if cfg.mode == "graph" else ms.PYNATIVE_MODE)
    if cfg.deterministic:  # before init(), so the collectives are deterministic too (MindSpore's note)
        ms.set_deterministic(True)
    rank, world = 0, 1
    if launched_distributed():
        from mindspore.communication import get_group_size, get_rank, init
        if "RANK_TABLE_FILE" in os.environ and "DEVICE_ID" in os.environ:
            _set_device(device, int(os.environ["DEVICE_ID"]))
        else:
            _set_device(device)  # msrun: init() binds each worker to its local device
        init()
        rank, world = get_rank(), get_group_size()
        ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                     device_num=world)
    else:
        _set_device(device, cfg.device_id)
    ms.set_seed(cfg.seed)  # same seed on every rank: identical initial weights
    amp = cfg.amp_level if cfg.amp_level != "auto" else ("O0" if device == "CPU" else "O2")
    mode = cfg.loss_scale_mode if cfg.loss_scale_mode != "auto" else ("fixed" if device == "CPU" else "dynamic")
    return RunContext(device, rank, world, amp, mode == "dynamic", sink == "on")


def _set_device(device: str, device_id: int | None = None) -> None:
    """``ms.set_device``, with MindSpore's 40-line 'Unsupported device target' as one line naming the fix."""
    try:
        ms.set_device(device) if device_id is None else ms.set_device(device, device_id)
    except RuntimeError as exc:
        if "Unsupported device target" not in str(exc):
            raise
        raise ConfigError(f"device_target {device} is not available in this MindSpore installation "
                          f"({str(exc).split('.')[1].strip()}): pass --device_target CPU, or install MindSpore "
                          f"for {device}") from None


class _SumAcrossRanks(nn.Cell):
    # A compiled graph: the eager all_reduce has no CPU kernel in MindSpore 2.10.
    def __init__(self) -> None:
        super().__init__()
        self.all_reduce = ops.AllReduce()

    @ms.jit
    def construct(self, x):
        return self.all_reduce(x)


def all_reduce_sum(values: np.ndarray, ctx: RunContext) -> np.ndarray:
    """Sum a small host array over ranks (e.g. correct-prediction counts)."""
    if ctx.world == 1:
        return values
    return _SumAcrossRanks()(ms.Tensor(values.astype(np.float32))).asnumpy().astype(values.dtype)


def local_workers(ctx: RunContext) -> int:
    """Training processes sharing this machine: run_distribute_train.sh exports TINYNET_LOCAL_WORKERS (msrun's
    --local_worker_num); otherwise the whole world (a single-node launch)."""
    try:
        return max(1, int(os.environ.get("TINYNET_LOCAL_WORKERS", ctx.world)))
    except ValueError:
        return ctx.world


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))  # the CPUs this process may use (taskset, containers), not the machine's
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def data_workers(cfg: SimpleNamespace, ctx: RunContext) -> int:
    """``num_parallel_workers``, capped to this rank's share of the CPUs: MindSpore's dataset refuses more workers
    than CPUs, and configs written for 8-worker servers must run on the machine at hand. Logs when it caps."""
    cpus, ranks = available_cpus(), local_workers(ctx)
    share = max(1, cpus // ranks)
    if cfg.num_parallel_workers <= share:
        return cfg.num_parallel_workers
    log.info("num_parallel_workers %d capped to %d: %d CPUs for %d local rank(s)", cfg.num_parallel_workers, share,
             cpus, ranks)
    return share


def setup_logging(ctx: RunContext | None = None) -> None:
    prefix = f"[rank {ctx.rank}] " if ctx and ctx.world > 1 else ""
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {prefix}%(message)s", datefmt="%H:%M:%S",
                        force=True)


_announced: weakref.WeakSet[nn.Cell] = weakref.WeakSet()


def before_first_call(cell: nn.Cell, what: str, wait: str, ctx: RunContext) -> None:
    """One log line (rank 0) before ``cell``'s first call in graph mode, when MindSpore compiles it: the run is
    otherwise silent for that while (``wait``, e.g. half a minute for the train step on CPU), which looks like a
    hang. Once per cell and process; a new input shape's recompile is shorter and not announced."""
    if cell in _announced or ms.get_context("mode") != ms.GRAPH_MODE:
        return
    _announced.add(cell)
    if ctx.is_main:
        log.info("compiling %s (graph mode; %s) ...", what, wait)
