"""The training run: data, model, AMP train step, per-epoch eval, checkpoints, metrics — resumable."""
from __future__ import annotations

import hashlib
import logging
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from collections.abc import Iterator
from types import SimpleNamespace

import mindspore as ms
import mindspore.dataset as ds
import numpy as np
from mindspore import nn, ops

from src import launch
from src.builders import build_network, dataset_classes, image_size, scan_dataset
from src.config import ConfigError, save_config
from src.context import (RunContext, all_reduce_sum, before_first_call, data_workers, setup_context,
                         setup_logging)
from src.evaluation import evaluate_samples
from tinynet_ms.atomic import OutputLock, remove_temporaries
from tinynet_ms.data import create_train_dataset
from tinynet_ms.train import (EMA, MetricsLog, TrainState, TrainStep, WithLoss, changed_conditions, create_rmsprop,
                              freeze_backbone, load_train_state, plot_curves, save_train_state, scaled_lr,
                              step_lr_schedule)
from tinynet_ms.weights import (CHECKPOINT_TEMPORARIES, batchnorm_statistics, non_finite, param_arrays,
                                save_checkpoint_atomic)

log = logging.getLogger("tinynet")


def _fmt_time(seconds: float) -> str:
    seconds = int(max(0, seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def _resume_path(cfg: SimpleNamespace, ckpt_dir: Path) -> Path | None:
    if not cfg.resume:
        return None
    if cfg.resume == "auto":
        last = ckpt_dir / "last.ckpt"
        return last if last.is_file() else None
    path = Path(cfg.resume)
    if not path.is_file():
        raise FileNotFoundError(f"--resume {cfg.resume}: no such checkpoint (use 'auto' to resume "
                                f"{ckpt_dir / 'last.ckpt'} when present)")
    return path


def divergence_sign(window_loss: float, start_loss: float, skipped: int, steps: int,
                    num_classes: int) -> str | None:
    """What says a run is going wrong long before its epoch ends: a loss far above its start (the first logged
    loss, or ln C if that was lower: early losses of a healthy run do rise above both, timm's too, so only a
    rise by a large factor counts), or most steps of the window skipped."""
    start = max(start_loss, math.log(max(num_classes, 2)))
    if not math.isfinite(window_loss):
        return f"loss is NaN or inf ({window_loss})"
    if window_loss > 4.0 * start:
        return f"loss {window_loss:.4g} is far above its start {start:.4g}"
    if skipped * 2 > steps:
        return f"{skipped} of the last {steps} steps overflowed and were skipped"
    return None


# How long the train step's compilation keeps the first step waiting: 15 s (TinyNet-E) to 22 s (A) at 32 px for one
# process on 2 CPU cores; ranks sharing the cores compile at the same time, so longer.
_STEP_COMPILE = "the first step waits for it: 15-60 s on a CPU"


def sink_steps(steps: int, log_interval: int) -> int:
    """Steps per data-sink call: the largest divisor of the epoch's steps up to ``log_interval``, so that calls
    end exactly at the epoch's end, where checkpoints and resume are (a prime step count makes it 1)."""
    return max(k for k in range(1, min(steps, log_interval) + 1) if steps % k == 0)


class Trainer:
    def __init__(self, cfg: SimpleNamespace, ctx: RunContext) -> None:
        self.cfg, self.ctx = cfg, ctx
        self.workers = data_workers(cfg, ctx)
        self.out = Path(cfg.output_dir)
        self.ckpt_dir = self.out / "checkpoints"
        classes = dataset_classes(cfg)
        self.train_set = scan_dataset(cfg, "train", classes)
        if not (Path(cfg.data_path) / "val").is_dir():
            raise FileNotFoundError(f"{Path(cfg.data_path) / 'val'} not found: training validates every epoch on it")
        self.val_set = scan_dataset(cfg, "val", classes)

        self.net = build_network(cfg, cfg.pretrained_checkpoint, training=True)
        if cfg.freeze_backbone:
            if not (cfg.pretrained_checkpoint or cfg.pretrained):
                log.warning("freeze_backbone without pretrained weights: the classifier learns on random features")
            log.info("freeze_backbone: training %s only; the rest stays as loaded",
                     ", ".join(freeze_backbone(self.net)))
        self.image_size = image_size(cfg, self.net)
        per_shard = math.ceil(len(self.train_set) / ctx.world)
        self.steps_per_epoch = per_shard // cfg.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"batch_size {cfg.batch_size} is larger than the {per_shard} training images per "
                             f"device: lower --batch_size")
        self.global_batch = cfg.batch_size * ctx.world
        self.peak_lr = scaled_lr(cfg.lr, cfg.lr_scaling, cfg.lr_reference_batch, self.global_batch)
        self.lr = step_lr_schedule(self.peak_lr, self.steps_per_epoch, cfg.epochs, cfg.warmup_epochs, cfg.warmup_lr,
                                   cfg.decay_epochs, cfg.decay_rate)
        self.optimizer = create_rmsprop(self.net, self.lr, cfg.weight_decay, cfg.rmsprop_decay, cfg.momentum,
                                        cfg.opt_eps)
        self.ema_net = None
        self._assign_stats: AssignParameters | None = None  # built at the first BN-statistics sync
        ema = None
        if cfg.ema_decay > 0:
            self.ema_net = build_network(cfg)
            ema = EMA(self.net, self.ema_net, cfg.ema_decay)
        amp_net = ms.amp.auto_mixed_precision(self.net, ctx.amp_level) if ctx.amp_level != "O0" else self.net
        reducer = None
        if ctx.world > 1:
            reducer = nn.DistributedGradReducer(self.optimizer.parameters, mean=True, degree=ctx.world)
        loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        # float32 at a fixed scale on one device: the loss alone tells a bad step (TrainStep's check_grads); with
        # several, the all-reduced gradients do, so that every rank skips the same steps
        check_grads = ctx.dynamic_loss_scale or ctx.amp_level != "O0" or ctx.world > 1
        self.step = TrainStep(WithLoss(amp_net, loss_fn), self.optimizer, cfg.loss_scale, ctx.dynamic_loss_scale,
                              ema=ema, grad_reducer=reducer, check_grads=check_grads)
        self.metrics = MetricsLog(self.out / "metrics.jsonl")
        self.state = self._fresh_state()
        self.start_loss: float | None = None  # this process's first logged loss, what divergence is measured from

    # -- pieces ---------------------------------------------------------------------------------------------
    def _fresh_state(self) -> TrainState:
        threads = int(ms.get_context("runtime_num_threads")) if self.ctx.device_target == "CPU" else 0
        return TrainState(data_workers=self.workers, cpu_threads=threads, global_batch=self.global_batch)

    def resume(self) -> None:
        path = _resume_path(self.cfg, self.ckpt_dir)
        if path is None:
            if self.ctx.is_main and self.metrics.path.exists():
                self.metrics.truncate_after(0)
            return
        saved = load_train_state(path, self.net, self.optimizer, self.step, self.ema_net)
        log.info("resumed %s: %d epochs done, best top-1 %.4f", path, saved.epoch, saved.best_top1)
        now = self._fresh_state()
        changed = changed_conditions(saved, now)
        if changed:  # statistically the same training, but not the uninterrupted run's numbers
            log.warning("resuming with other %s: the run goes on exactly as configured, but not bit-identical "
                        "to an uninterrupted one (README, Reproducibility)", "; ".join(changed))
        self.state = replace(saved, data_workers=now.data_workers, cpu_threads=now.cpu_threads,
                             global_batch=now.global_batch)
        scale = float(self.step.loss_scale.asnumpy())
        if scale != self.cfg.loss_scale:  # not silently: --loss_scale only sets where a fresh run starts
            log.info("loss scale %g continues from the checkpoint (--loss_scale %g sets a fresh run's initial scale)",
                     scale, self.cfg.loss_scale)
        if self.ctx.is_main:
            self.metrics.truncate_after(self.state.epoch)

    def _train_epoch(self, epoch: int) -> dict:
        cfg, ctx = self.cfg, self.ctx
        data = create_train_dataset(
            self.train_set.samples, self.image_size, cfg.batch_size, epoch=epoch, seed=cfg.seed,
            noise_size=self.net.noise_size, auto_augment=cfg.auto_augment, re_prob=cfg.re_prob,
            hflip_prob=cfg.hflip_prob, min_crop_scale=cfg.min_crop_scale, num_workers=self.workers,
            num_shards=ctx.world if ctx.world > 1 else None, shard_id=ctx.rank if ctx.world > 1 else None,
            preprocessing=self.net.preprocessing)
        steps = data.get_dataset_size()
        if steps != self.steps_per_epoch:
            raise RuntimeError(f"pipeline yields {steps} batches per epoch, expected {self.steps_per_epoch}")
        self.step.set_train(True)
        skipped_before = int(self.step.skipped.asnumpy())
        self.step.take_loss_sum()
        loss_total, window_start, t_start, t_first, first = 0.0, 0, time.time(), None, 0
        skipped_window, warned, before = skipped_before, False, 0
        for done in self._run_steps(data, steps):
            if t_first is None:
                t_first, first = time.time(), done  # excludes graph compilation from the throughput
            if done // cfg.log_interval > before // cfg.log_interval or done == steps:
                loss_sum = self.step.take_loss_sum()
                loss_total += loss_sum
                elapsed = time.time() - t_first
                ips = (done - first) * cfg.batch_size * ctx.world / elapsed if done > first else 0.0
                eta = ((cfg.epochs - epoch) * steps - done) * cfg.batch_size * ctx.world / ips if ips else 0.0
                window_loss = loss_sum / (done - window_start)
                if ctx.is_main:
                    log.info("epoch %d/%d step %d/%d loss %.4f lr %.6f img/s %.1f eta %s", epoch + 1, cfg.epochs,
                             done, steps, window_loss, self.lr[epoch * steps + done - 1], ips, _fmt_time(eta))
                skipped_now = int(self.step.skipped.asnumpy())
                if self.start_loss is None and math.isfinite(window_loss):
                    self.start_loss = window_loss
                sign = divergence_sign(window_loss, self.start_loss or 0.0, skipped_now - skipped_window,
                                       done - window_start, cfg.num_classes)
                if sign and not warned and ctx.is_main:  # once per epoch; the epoch-end checks decide whether to stop
                    log.warning("epoch %d step %d: the run looks diverged: %s (usual cures: a lower --lr; if steps "
                                "overflow, --amp_level O0 or a smaller --loss_scale)", epoch + 1, done, sign)
                    warned = True
                window_start, skipped_window = done, skipped_now
            before = done
        seconds = time.time() - t_start
        train_imgs = (steps - first) * cfg.batch_size * ctx.world
        skipped = int(self.step.skipped.asnumpy()) - skipped_before
        train_loss = loss_total / steps
        if skipped == steps:
            raise FloatingPointError(
                f"every step of epoch {epoch + 1} overflowed (loss {train_loss}): {self._way_back()}, with a lower --lr, "
                f"--amp_level O0 or a smaller --loss_scale")
        return {"train_loss": train_loss, "lr": float(self.lr[(epoch + 1) * steps - 1]), "epoch_seconds": seconds,
                "img_per_sec": train_imgs / (time.time() - t_first) if steps > first else 0.0,
                "skipped_steps": skipped, "loss_scale": float(self.step.loss_scale.asnumpy())}

    def _run_steps(self, data: ds.Dataset, steps: int) -> Iterator[int]:
        """Run the epoch's steps, yielding how many are done after each host call: one per call from the host
        iterator, or ``sink_steps`` per call with MindSpore's data sink (Ascend/GPU: the batches are queued on the
        device and, where MindSpore's graph mode loops on the device, the steps run in one launch)."""
        if not self.ctx.data_sink:
            for done, batch in enumerate(data.create_tuple_iterator(num_epochs=1), 1):
                before_first_call(self.step, "the train step", _STEP_COMPILE, self.ctx)
                self.step(*batch)
                yield done
            return
        k = sink_steps(steps, self.cfg.log_interval)
        run = ms.data_sink(self.step, data, sink_size=k, jit_config=ms.JitConfig())
        try:
            for done in range(k, steps + 1, k):
                before_first_call(self.step, "the train step", _STEP_COMPILE, self.ctx)
                run()
                yield done
        finally:  # the sink sends its dataset round and round: stop this epoch's (the next one is a new dataset)
            transfer = getattr(data, "__transfer_dataset__", None)
            if transfer is not None:
                transfer.stop_send()
                transfer.release()

    def _sync_batchnorm_stats(self) -> None:
        """Average BN moving statistics over ranks (timm's ``--dist-bn reduce``): each rank saw other
        batches, so without this the ranks' models differ and every rank evaluates a different network."""
        if self.ctx.world == 1:
            return
        if self._assign_stats is None:
            stats = [p for net in filter(None, (self.net, self.ema_net)) for p in batchnorm_statistics(net)]
            self._assign_stats = AssignParameters(stats)
        stats = self._assign_stats.params
        flat = all_reduce_sum(np.concatenate([p.asnumpy().ravel() for p in stats]), self.ctx) / self.ctx.world
        values, offset = [], 0
        for p in stats:
            values.append(ms.Tensor(flat[offset:offset + p.size].reshape(p.shape), p.dtype))
            offset += p.size
        # mutable: new values of the same graph input, not constants (MindSpore would warn per epoch, printing them all)
        self._assign_stats(ms.mutable(tuple(values)))

    def _validate(self, net: nn.Cell) -> tuple[float, float, int]:
        return evaluate_samples(net, self.val_set.samples, self.image_size, self.cfg, self.ctx, self.workers)

    def _check_finite(self, epoch: int, record: dict) -> None:
        """A diverged epoch stops the run before anything of it is written (checkpoints refuse NaN/inf anyway),
        naming the newest checkpoint to return to."""
        bad = non_finite(param_arrays(self.net)) + (non_finite(param_arrays(self.ema_net)) if self.ema_net else [])
        if not bad:
            return
        raise FloatingPointError(
            f"epoch {epoch + 1} diverged (train loss {record['train_loss']:.4g}, {record['skipped_steps']} steps "
            f"skipped): {len(bad)} weight/statistic tensors are NaN or inf (first: {bad[0]}); nothing of this epoch "
            f"was saved; {self._way_back()} and a lower --lr")

    def _way_back(self) -> str:
        """Where a failed run can be taken up again (only finite states are ever saved)."""
        last = self.ckpt_dir / "last.ckpt"
        if last.is_file():
            return f"resume from {last} (epoch {self.state.epoch}) with --resume auto"
        return "no checkpoint of this run exists yet (it failed in its first epoch): start again"

    def _save(self, epoch: int, record: dict) -> None:
        """The epoch's metrics record first, then last.ckpt: a kill in between leaves a record that the resume
        (which truncates metrics to last.ckpt's epoch) removes and the re-run writes again, so every finished epoch
        is in metrics.jsonl exactly once; the other order would lose the record for good."""
        if not self.ctx.is_main:
            return
        self.metrics.append(record)
        classes = self.train_set.classes  # stored with the weights: predict.py and export name the outputs
        save_train_state(self.ckpt_dir / "last.ckpt", self.net, self.optimizer, self.step, self.state, self.ema_net,
                         class_names=classes)
        if self.cfg.keep_checkpoint_max > 0:
            save_checkpoint_atomic(self.net, self.ckpt_dir / f"epoch_{epoch + 1:04d}.ckpt", class_names=classes)
            epoch_files = sorted(self.ckpt_dir.glob("epoch_*.ckpt"))
            for old in epoch_files[:-self.cfg.keep_checkpoint_max]:
                old.unlink()

    # -- the run --------------------------------------------------------------------------------------------
    def fit(self) -> TrainState:
        cfg = self.cfg
        log.info("training %s@%d on %s x%d (amp %s, %s loss scale): %d steps/epoch, global batch %d",
                 cfg.model, self.image_size, self.ctx.device_target, self.ctx.world, self.ctx.amp_level,
                 "dynamic" if self.ctx.dynamic_loss_scale else "fixed", self.steps_per_epoch, self.global_batch)
        if cfg.lr_scaling == "linear":
            log.info("lr %.6g = %g x %d / %d (lr_scaling linear: global batch %d = %d device(s) x %d, "
                     "lr_reference_batch %d)", self.peak_lr, cfg.lr, self.global_batch, cfg.lr_reference_batch,
                     self.global_batch, self.ctx.world, cfg.batch_size, cfg.lr_reference_batch)
        else:
            log.info("lr %.6g as given (lr_scaling none; global batch %d)", self.peak_lr, self.global_batch)
        if self.ctx.data_sink:
            k = sink_steps(self.steps_per_epoch, cfg.log_interval)
            log.info("data sink: %d steps per host call (the largest divisor of %d steps/epoch up to log_interval %d)"
                     "%s", k, self.steps_per_epoch, cfg.log_interval,
                     "" if k * 4 >= cfg.log_interval else "; a log_interval dividing the steps per epoch sinks more")
        for epoch in range(self.state.epoch, cfg.epochs):
            record = {"epoch": epoch + 1, **self._train_epoch(epoch)}
            self._sync_batchnorm_stats()
            self._check_finite(epoch, record)
            if (epoch + 1) % cfg.eval_interval == 0 or epoch + 1 == cfg.epochs:
                top1, top5, n = self._validate(self.net)
                record.update(val_top1=top1, val_top5=top5, val_samples=n)
                candidates = [(top1, self.net, "model")]
                if self.ema_net is not None:
                    ema1, ema5, _ = self._validate(self.ema_net)
                    record.update(val_top1_ema=ema1, val_top5_ema=ema5)
                    candidates.append((ema1, self.ema_net, "ema"))
                best1, best_net, source = max(candidates, key=lambda c: c[0])
                if best1 > self.state.best_top1:
                    self.state.best_top1, self.state.best_epoch = best1, epoch + 1
                    if self.ctx.is_main:
                        save_checkpoint_atomic(best_net, self.ckpt_dir / "best.ckpt",
                                               class_names=self.train_set.classes)
                        log.info("new best top-1 %.4f (%s weights) -> %s", best1, source,
                                 self.ckpt_dir / "best.ckpt")
            self.state.epoch = epoch + 1
            record.update(best_top1=self.state.best_top1, best_epoch=self.state.best_epoch)
            self._save(epoch, record)
            if self.ctx.is_main:
                log.info("epoch %d: %s", epoch + 1,
                         " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
        records = self.metrics.records() if self.ctx.is_main else []
        if records:
            log.info("curves: %s", plot_curves(records, self.out / "curves.png"))
        return self.state


class AssignParameters(nn.Cell):
    """Write new values into parameters from a compiled graph. In MindSpore 2.10 a host-side ``set_data`` on a
    parameter that the compiled train step assigns to (the EMA copy's BN statistics) detaches it: the step
    keeps writing the old buffer and the EMA network's statistics freeze."""

    def __init__(self, params: list[ms.Parameter]) -> None:
        super().__init__()
        self.params = ms.ParameterTuple(params)
        self.hyper_map = ops.HyperMap()  # not a Python loop: graph mode nests one call per item (depth limit 1000)

    def construct(self, values):
        return self.hyper_map(ops.assign, self.params, values)


def weights_digest(net: nn.Cell) -> str:
    h = hashlib.sha1()
    for p in net.get_parameters():
        h.update(p.asnumpy().tobytes())
    return h.hexdigest()[:16]


# What a run writes into its output_dir besides checkpoints/ (its logs/ are rotated by the launcher, never replaced).
RUN_FILES = ("metrics.jsonl", "curves.png", "config.yaml")


def previous_run_files(out: Path) -> list[Path]:
    """What a run left in ``out``: its checkpoints, metrics, curves and config."""
    ckpts = sorted((out / "checkpoints").glob("*.ckpt")) if (out / "checkpoints").is_dir() else []
    return ckpts + [out / name for name in RUN_FILES if (out / name).is_file()]


def _output_folder(cfg: SimpleNamespace) -> Path:
    """``output_dir``, made and checked writable: found now, not when the first epoch's checkpoint is written."""
    out = Path(cfg.output_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"output_dir '{out}' is a file, not a folder: choose another --output_dir")
    try:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out / "checkpoints"):
            pass
    except OSError as e:
        raise ConfigError(f"output_dir '{out}' cannot be written ({e.strerror or e}): choose another --output_dir "
                          f"or fix its permissions") from None
    return out


def lock_output_dir(cfg: SimpleNamespace) -> OutputLock:
    """The output_dir's lock, held for the run's life: one run writes a directory at a time (two would interleave
    their metrics, replace each other's config and checkpoints). The ranks of a launcher's job share its lock."""
    return launch.lock_output_dir(_output_folder(cfg))


def check_output_dir(cfg: SimpleNamespace, ctx: RunContext, only_check: bool = False) -> None:
    """A fresh run never silently replaces another run's work: it needs --resume, or --overwrite true (then the old
    checkpoints, metrics, curves and config go first, so none of them survives beside the new run's). A run killed
    before its first checkpoint left only metrics/curves/config: --resume auto starts it again in place. Rank 0
    decides (its refusal stops the job); the other ranks only check that the folder can be written: they start at
    other moments, when rank 0 may have written this run's config.yaml already. ``only_check``: the scripts' check
    before any rank starts: refuses as rank 0 would, changes nothing."""
    out = _output_folder(cfg)
    if not (ctx.is_main or only_check):
        return
    if not only_check:  # a run killed while writing left these; nobody writes here before this run starts
        stale = remove_temporaries(out / "checkpoints", *CHECKPOINT_TEMPORARIES) + remove_temporaries(
            out, *(Path(name).suffix for name in RUN_FILES))
        if stale:
            log.info("removed %d temporaries of an interrupted write: %s", len(stale), ", ".join(p.name for p in stale))
    if _resume_path(cfg, out / "checkpoints") is not None:
        return
    old = previous_run_files(out)
    ckpts = [p for p in old if p.suffix == ".ckpt"]
    if not old or (cfg.resume and not ckpts):  # --resume auto over a run killed before its first checkpoint
        return
    if not cfg.overwrite:
        names = ", ".join(p.name for p in (ckpts or old)[:4]) + (", ..." if len(ckpts or old) > 4 else "")
        what = f"checkpoints ({names})" if ckpts else f"files ({names}; no checkpoint)"
        raise ConfigError(f"output_dir '{out}' holds another run's {what}: pass --resume auto to continue it, "
                          f"--overwrite true to start afresh (deletes them), or another --output_dir")
    if not only_check:
        for path in old:
            path.unlink()
        log.info("--overwrite true: deleted the previous run's %d checkpoints and its %s in %s", len(ckpts),
                 ", ".join(p.name for p in old if p.suffix != ".ckpt") or "nothing else", out)


def run_training(cfg: SimpleNamespace) -> TrainState:
    with lock_output_dir(cfg):  # first: before anything reads, cleans or writes the directory
        ctx = setup_context(cfg)
        setup_logging(ctx)
        check_output_dir(cfg, ctx)
        trainer = Trainer(cfg, ctx)
        trainer.resume()
        if ctx.is_main:  # only once the run is known to start: a run that fails to set up leaves the old record alone
            save_config(cfg, Path(cfg.output_dir) / "config.yaml")
        state = trainer.fit()
        # Every rank logs a digest of its weights: data-parallel ranks must end identical.
        log.info("training finished: %d epochs, best top-1 %.4f at epoch %d, weights digest %s", state.epoch,
                 state.best_top1, state.best_epoch, weights_digest(trainer.net))
        return state
