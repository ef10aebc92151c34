"""The training run: data, model, AMP train step, per-epoch eval, checkpoints, metrics — resumable."""
from __future__ import annotations

import errno
import hashlib
import logging
import math
import signal
import tempfile
import time
from contextlib import contextmanager, suppress
from dataclasses import replace
from pathlib import Path
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import NamedTuple

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
from tinynet_ms.weights import (CHECKPOINT_TEMPORARIES, UnreadableCheckpoint, batchnorm_statistics, ema_weights,
                                network_weights, non_finite, param_arrays, read_checkpoint, read_class_names,
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


class Stretch(NamedTuple):
    """Training steps as the divergence test sees them: a log window, or a whole epoch (summed over ranks)."""
    steps: int
    loss_sum: float  # over the steps whose loss was finite
    finite: int  # steps whose loss was finite
    skipped: int  # steps that changed nothing: a NaN/inf loss or overflowing gradients
    loss_scale: float

    @property
    def loss(self) -> float:
        return self.loss_sum / self.finite if self.finite else math.nan


# Cross-entropy past LOSS_BOUND x ln C (ln C: the loss of a uniform guess over C classes) has diverged whatever the
# run's start: the right class gets probability C^-1000, logits thousands apart, which only exploded weights give. A
# learning run stays within tens of ln C (timm's head init starts a 4-class run near 4 ln C; the demo recipe's early
# rise peaks at 19 ln C, then falls); diverged runs measured here passed it in their first steps (5.8e8 at --lr 1e4,
# issue 33's 3.8e14). Not relative to the first logged loss: a run can diverge before that.
LOSS_BOUND = 1000.0
# Weights and BN statistics past WEIGHT_BOUND in magnitude: a learning TinyNet keeps them within ~50 (timm's init under
# 5; demo runs: |w| 3.2, variances 49), a diverging one passes it within an epoch or two (--lr 1e4: |w| 1.1e6,
# variances 1.8e25; issue 33: 2.8e30), finite but past float16 and a few layers from overflowing float32.
WEIGHT_BOUND = 1e6


def divergence_sign(s: Stretch, num_classes: int, start_loss: float | None = None, dynamic: bool = False,
                    weights: Mapping[str, np.ndarray] | None = None) -> str | None:
    """The one test of diverged training, for a log window (a warning) and for an epoch with its ``weights`` (never
    saved: Trainer._check_diverged); the reason with its cure, or None. Diverged: most losses NaN/inf; most steps
    skipped (not while a dynamic scale above 1 is still coming down); the mean loss past LOSS_BOUND x ln C; a weight
    or BN statistic NaN/inf or past WEIGHT_BOUND. Given ``start_loss`` (the run's first logged loss), also a loss 4x
    above it (or above ln C if higher): healthy early losses rise above both (timm's too; the demo recipe's 5.8x), so
    that is a window's warning only, never an epoch's stop."""
    chance = math.log(max(num_classes, 2))
    bad = s.steps - s.finite
    if bad * 2 > s.steps:
        return f"the loss was NaN or inf at {bad} of {s.steps} steps: lower --lr"
    overflowed = s.skipped - bad  # a finite loss, yet skipped: its gradients overflowed
    if s.skipped * 2 > s.steps and not (dynamic and s.loss_scale > 1):
        if overflowed * 2 <= s.skipped:
            cure = "lower --lr"
        elif s.loss_scale > 1 and not dynamic:
            cure = "use a smaller --loss_scale"
        else:
            cure = "use --amp_level O0 or a lower --lr"
        return (f"{s.skipped} of {s.steps} steps were skipped, {overflowed} of them for gradients overflowing at loss "
                f"scale {s.loss_scale:g}: {cure}")
    if not math.isfinite(s.loss):
        return f"the loss overflowed ({s.loss}): lower --lr"
    if s.loss > LOSS_BOUND * chance:
        return (f"loss {s.loss:.4g} is past {LOSS_BOUND:g} ln C = {LOSS_BOUND * chance:.4g}, where no learning run "
                f"goes: lower --lr")
    if weights:
        broken = non_finite(weights)
        if broken:
            return f"{len(broken)} weight/statistic tensors are NaN or inf (first: {broken[0]}): lower --lr"
        peak, name = max(((float(np.abs(v).max()), k) for k, v in weights.items()
                          if np.issubdtype(v.dtype, np.floating) and v.size), default=(0.0, ""))
        if peak > WEIGHT_BOUND:
            return f"{name} reaches {peak:.3g}, past {WEIGHT_BOUND:g} where no learning run's weights go: lower --lr"
    if start_loss is not None and s.loss > 4.0 * max(start_loss, chance):
        return f"loss {s.loss:.4g} is far above its start {max(start_loss, chance):.4g}: lower --lr"
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
        loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        # float32 at a fixed scale on one device: the loss alone tells a bad step (TrainStep's check_grads; at a
        # scale past LOSS_GUARD_MAX_SCALE it checks the gradients anyway); with several, the all-reduced gradients
        # do, so that every rank skips the same steps
        check_grads = ctx.dynamic_loss_scale or ctx.amp_level != "O0" or ctx.world > 1
        self.step = TrainStep(WithLoss(amp_net, loss_fn), self.optimizer, cfg.loss_scale, ctx.dynamic_loss_scale,
                              ema=ema, world=ctx.world, check_grads=check_grads)
        self.metrics = MetricsLog(self.out / "metrics.jsonl")
        self.state = self._fresh_state()
        self.start_loss: float | None = None  # this process's first logged loss, what divergence is measured from
        self.resumed_from: Path | None = None

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
        try:
            saved = load_train_state(path, self.net, self.optimizer, self.step, self.ema_net)
        except UnreadableCheckpoint as e:
            raise UnreadableCheckpoint(f"{e}; it cannot be resumed. {self._without(path)}") from None
        self.resumed_from = path
        log.info("resumed %s: %d epochs done, best top-1 %.4f", path, saved.epoch, saved.best_top1)
        now = self._fresh_state()
        changed = changed_conditions(saved, now)
        if changed:  # statistically the same training, but not the uninterrupted run's numbers
            log.warning("resuming with other %s: the run goes on exactly as configured, but not bit-identical "
                        "to an uninterrupted one (README, Reproducibility)", "; ".join(changed))
        self.state = replace(saved, data_workers=now.data_workers, cpu_threads=now.cpu_threads,
                             global_batch=now.global_batch)
        scale = float(self.step.loss_scale.asnumpy())
        if scale != self.cfg.loss_scale and self.ctx.dynamic_loss_scale:  # not silently: it is learned state
            log.info("loss scale %g continues from the checkpoint (--loss_scale %g sets a fresh run's initial scale)",
                     scale, self.cfg.loss_scale)
        elif scale != self.cfg.loss_scale:  # a fixed scale is a setting: lowered after an overflow, it must apply
            self.step.loss_scale.set_data(ms.Tensor(self.cfg.loss_scale, ms.float32))
            log.info("fixed loss scale %g (--loss_scale; the checkpoint's run had %g)", self.cfg.loss_scale, scale)
        if self.ctx.is_main:
            self.metrics.truncate_after(self.state.epoch)
            self._complete_best(path)

    def _without(self, path: Path) -> str:
        """What to do when ``path`` cannot be resumed. Not a fallback to an epoch checkpoint: those hold the weights
        only, so continuing from one would silently restart the optimizer's moments, the EMA and the best-top-1
        record: another run than the one asked for, which the user should choose knowingly."""
        for older in sorted(self.ckpt_dir.glob("epoch_*.ckpt"), reverse=True):
            try:
                read_checkpoint(older)
            except ValueError:
                continue
            return (f"Its run's newest intact weights are {older}: to go on from them (a fresh optimizer and EMA) "
                    f"pass --pretrained_checkpoint {older} with another --output_dir; or --overwrite true starts "
                    f"afresh")
        return "Nothing of its run can be continued: --overwrite true starts afresh"

    def _complete_best(self, path: Path) -> None:
        """best.ckpt goes after last.ckpt (``_save``): a run stopped between the two left a last.ckpt whose record
        names its own epoch as the best, beside an older best.ckpt; write the weights that record names."""
        if self.state.best_epoch != self.state.epoch or self.state.best_is_ema < 0:
            return
        arrays = read_checkpoint(path)
        weights = ema_weights(arrays) if self.state.best_is_ema else network_weights(arrays)
        best = self.ckpt_dir / "best.ckpt"
        try:
            held = read_checkpoint(best) if best.is_file() else {}
        except ValueError:  # torn or foreign: replaced below
            held = {}
        if held.keys() == weights.keys() and all(np.array_equal(held[k], v) for k, v in weights.items()):
            return
        with self._writing(best):
            save_checkpoint_atomic(weights, best, class_names=read_class_names(path))
        log.warning("%s did not hold the best weights %s records (epoch %d, top-1 %.4f: the run stopped before "
                    "writing it): written from it", best, path, self.state.best_epoch, self.state.best_top1)

    def _train_epoch(self, epoch: int) -> tuple[dict, Stretch]:
        """The epoch's steps: its metrics record and the epoch as the divergence test sees it (the same on every
        rank: summed over them)."""
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
        self.step.take_losses()
        totals = np.zeros(2)  # the finite losses' sum and count
        window_start, t_start, t_first, first = 0, time.time(), None, 0
        skipped_window, warned, before = skipped_before, False, 0
        for done in self._run_steps(data, steps):
            if t_first is None:
                t_first, first = time.time(), done  # excludes graph compilation from the throughput
            if done // cfg.log_interval > before // cfg.log_interval or done == steps:
                loss_sum, finite = self.step.take_losses()
                totals += (loss_sum, finite)
                elapsed = time.time() - t_first
                ips = (done - first) * cfg.batch_size * ctx.world / elapsed if done > first else 0.0
                eta = ((cfg.epochs - epoch) * steps - done) * cfg.batch_size * ctx.world / ips if ips else 0.0
                skipped_now = int(self.step.skipped.asnumpy())
                window = Stretch(done - window_start, loss_sum, finite, skipped_now - skipped_window,
                                 float(self.step.loss_scale.asnumpy()))
                if ctx.is_main:
                    log.info("epoch %d/%d step %d/%d loss %.4f lr %.6f img/s %.1f eta %s", epoch + 1, cfg.epochs,
                             done, steps, window.loss, self.lr[epoch * steps + done - 1], ips, _fmt_time(eta))
                if self.start_loss is None and math.isfinite(window.loss):
                    self.start_loss = window.loss
                sign = divergence_sign(window, cfg.num_classes, self.start_loss, ctx.dynamic_loss_scale)
                if sign and not warned and ctx.is_main:  # once per epoch; the epoch-end check decides whether to stop
                    log.warning("epoch %d step %d: the run looks diverged: %s", epoch + 1, done, sign)
                    warned = True
                window_start, skipped_window = done, skipped_now
            before = done
        seconds = time.time() - t_start
        train_imgs = (steps - first) * cfg.batch_size * ctx.world
        skipped = int(self.step.skipped.asnumpy()) - skipped_before  # the same on every rank (reduced gradients)
        loss_sum, finite = all_reduce_sum(totals, ctx)  # the losses are each rank's own
        whole = Stretch(steps * ctx.world, float(loss_sum), int(finite), skipped * ctx.world,
                        float(self.step.loss_scale.asnumpy()))
        return {"train_loss": whole.loss, "lr": float(self.lr[(epoch + 1) * steps - 1]), "epoch_seconds": seconds,
                "img_per_sec": train_imgs / (time.time() - t_first) if steps > first else 0.0,
                "skipped_steps": skipped, "loss_scale": whole.loss_scale}, whole

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

    def _check_diverged(self, epoch: int, whole: Stretch) -> None:
        """A diverged epoch (``divergence_sign``) stops the run before anything of it is written: it never becomes
        last.ckpt or best.ckpt and rotates no epoch checkpoint out. Every rank decides alike: the losses are summed
        over ranks, and the weights are the same after the BN-statistics sync."""
        weights = param_arrays(self.net)
        if self.ema_net is not None:
            weights.update({f"ema.{k}": v for k, v in param_arrays(self.ema_net).items()})
        sign = divergence_sign(whole, self.cfg.num_classes, dynamic=self.ctx.dynamic_loss_scale, weights=weights)
        if sign:
            raise FloatingPointError(f"epoch {epoch + 1} diverged: {sign}, then {self._way_back()}")

    def _way_back(self) -> str:
        """How a stopped run goes on and what it kept: only sound states are ever saved, the stopped epoch's never."""
        last = self.ckpt_dir / "last.ckpt"
        if last.is_file():
            return (f"--resume auto (nothing of this epoch was saved; the last good checkpoint {last}, epoch "
                    f"{self.state.epoch}, is kept)")
        if self.resumed_from is not None:
            return f"--resume {self.resumed_from} (nothing of this epoch was saved; that checkpoint is kept)"
        return "--resume auto (it starts again: no epoch of this run was saved)"

    @contextmanager
    def _writing(self, path: Path) -> Iterator[None]:
        """A full disk, quota or file-size limit while writing ``path``: one line naming it and the way on. Nothing
        is lost: every write is atomic or undone (metrics), in ``_save``'s order, so --resume auto re-runs at most
        the epoch being saved."""
        try:
            yield
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise
            err = OSError(f"cannot write {path}: {e.strerror} (the disk or quota is full, or the file-size limit, "
                          f"ulimit -f, is reached): free space or raise the limit, then --resume auto; nothing is "
                          f"lost, it goes on from the last checkpoint written whole")
            err.errno = e.errno
            raise err from None

    def _save(self, epoch: int, record: dict, best: nn.Cell | None) -> None:
        """The epoch's metrics record first, then last.ckpt, then (``best``: this epoch's best weights) best.ckpt. A
        kill between record and last.ckpt leaves a record that the resume (which truncates metrics to last.ckpt's
        epoch) removes and the re-run writes again, so every finished epoch is in metrics.jsonl exactly once; a kill
        between last.ckpt and best.ckpt leaves a last.ckpt that names its own epoch the best, which the resume writes
        to best.ckpt (``_complete_best``). Other orders lose the record, or leave best.ckpt holding an epoch that no
        checkpoint or record knows (what a kill before last.ckpt did)."""
        if not self.ctx.is_main:
            return
        with self._writing(self.metrics.path):
            self.metrics.append(record)
        classes = self.train_set.classes  # stored with the weights: predict.py and export name the outputs
        last = self.ckpt_dir / "last.ckpt"
        with self._writing(last):
            save_train_state(last, self.net, self.optimizer, self.step, self.state, self.ema_net, class_names=classes)
        if self.cfg.keep_checkpoint_max > 0:
            path = self.ckpt_dir / f"epoch_{epoch + 1:04d}.ckpt"
            with self._writing(path):
                save_checkpoint_atomic(self.net, path, class_names=classes)
            epoch_files = sorted(self.ckpt_dir.glob("epoch_*.ckpt"))
            for old in epoch_files[:-self.cfg.keep_checkpoint_max]:
                old.unlink()
        if best is not None:
            path = self.ckpt_dir / "best.ckpt"
            with self._writing(path):
                save_checkpoint_atomic(best, path, class_names=classes)
            log.info("new best top-1 %.4f (%s weights) -> %s", self.state.best_top1,
                     "ema" if self.state.best_is_ema else "model", path)

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
        with suppress(ValueError):  # (not in the main thread: signals cannot be set there)
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past ulimit -f: a write error (_writing), not a kill
        for epoch in range(self.state.epoch, cfg.epochs):
            record, whole = self._train_epoch(epoch)
            record = {"epoch": epoch + 1, **record}
            self._sync_batchnorm_stats()
            self._check_diverged(epoch, whole)
            best_net = None
            if (epoch + 1) % cfg.eval_interval == 0 or epoch + 1 == cfg.epochs:
                top1, top5, n = self._validate(self.net)
                record.update(val_top1=top1, val_top5=top5, val_samples=n)
                candidates = [(top1, self.net, "model")]
                if self.ema_net is not None:
                    ema1, ema5, _ = self._validate(self.ema_net)
                    record.update(val_top1_ema=ema1, val_top5_ema=ema5)
                    candidates.append((ema1, self.ema_net, "ema"))
                best1, net, source = max(candidates, key=lambda c: c[0])
                if best1 > self.state.best_top1:
                    self.state.best_top1, self.state.best_epoch = best1, epoch + 1
                    self.state.best_is_ema, best_net = int(source == "ema"), net
            self.state.epoch = epoch + 1
            record.update(best_top1=self.state.best_top1, best_epoch=self.state.best_epoch)
            self._save(epoch, record, best_net)
            if self.ctx.is_main:
                log.info("epoch %d: %s", epoch + 1,
                         " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))
        records = self.metrics.records() if self.ctx.is_main else []
        if records:
            with self._writing(self.out / "curves.png"):
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
