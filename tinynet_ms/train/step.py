"""One training step as one graph: loss-scaled grads, all-reduce, overflow skip, optimizer, EMA."""
from __future__ import annotations

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops

from tinynet_ms.weights import batchnorm_statistics, named_params

# The largest fixed loss scale at which the loss alone tells a bad float32 step: the scaled gradients overflow
# float32 (3.4e38) only where an unscaled gradient passes 3.4e38 / 2^24 = 2e31, which no network short of exploded
# weights has (and those the trainer's divergence check stops). Above it ordinary gradients overflow under a finite
# loss (--loss_scale 1e38 applied inf gradients: NaN weights), so the step checks every gradient.
LOSS_GUARD_MAX_SCALE = 2.0 ** 24


class EMA(nn.Cell):
    """Exponential moving average of every parameter (weights and BN statistics, as timm's ModelEmaV2)
    held in a second network of the same architecture, so it can be evaluated and saved as a model."""

    def __init__(self, net: nn.Cell, ema_net: nn.Cell, decay: float) -> None:
        super().__init__()
        self.decay = decay
        src, dst = named_params(net), named_params(ema_net)
        if list(src) != list(dst) or any(src[k].shape != dst[k].shape for k in src):
            raise ValueError("the EMA network must have the model's architecture")
        for name, d in dst.items():
            d.set_data(src[name].data.copy())
            d.requires_grad = False
        self.src = ms.ParameterTuple(src.values())
        self.dst = ms.ParameterTuple(dst.values())
        self.hyper_map = ops.HyperMap()

    def construct(self):
        # HyperMap, not a Python loop: graph mode unrolls a loop into nested calls, and a deep network's ~500
        # parameters exceeded MindSpore's call-depth limit (1000) when compiling the train step
        return self.hyper_map(ops.partial(_ema_update, self.decay), self.dst, self.src)


class TrainStep(nn.Cell):
    """loss·scale → grads → (all-reduce) → unscale → finite? optimizer : skip → (EMA) → loss-scale update.

    A skipped step leaves no trace: the forward pass in training mode also moves the BatchNorm statistics,
    so they are copied before it and put back when the gradients are not finite (an inf/NaN batch would
    otherwise poison them while the weights stay clean).

    ``dynamic`` loss scaling halves the scale on overflow and doubles it after ``scale_window`` finite
    steps (Ascend/GPU); otherwise the scale is fixed (CPU). Skipped steps are counted in ``skipped``.

    ``check_grads=False`` guards on the loss alone: in float32 at a fixed scale up to ``LOSS_GUARD_MAX_SCALE`` a
    gradient does not overflow unless the loss does, and the all-gradients reduction costs ~4% of a CPU step (a
    larger scale checks the gradients anyway). Keep it on for float16 (AMP) and for dynamic scaling, whose whole
    point is gradients overflowing under a finite loss.

    ``take_losses`` reads the summed loss of the steps whose loss was finite and their count: one NaN batch, skipped,
    does not make a stretch's mean loss NaN, and the count tells NaN losses from overflowing gradients.
    """

    def __init__(self, net_with_loss: nn.Cell, optimizer: nn.Optimizer, loss_scale: float = 1.0,
                 dynamic: bool = False, scale_window: int = 2000, ema: EMA | None = None,
                 world: int = 1, check_grads: bool = True) -> None:
        super().__init__(auto_prefix=False)
        if dynamic and not check_grads:
            raise ValueError("dynamic loss scaling needs check_grads=True: it reacts to overflowing gradients")
        self.check_grads = check_grads or loss_scale > LOSS_GUARD_MAX_SCALE
        self.net_with_loss, self.optimizer, self.ema = net_with_loss, optimizer, ema
        self.weights = optimizer.parameters
        self.grad = ops.GradOperation(get_by_list=True, sens_param=True)
        # data parallel (``world`` ranks, communication initialised): the ranks' gradients averaged, every rank
        # then takes the same step (timm's DDP)
        self.grad_reducer = (nn.DistributedGradReducer(self.weights, mean=True, degree=world) if world > 1
                             else ops.identity)
        self.dynamic, self.scale_window = dynamic, scale_window
        self.loss_scale = Parameter(Tensor(loss_scale, ms.float32), name="loss_scale", requires_grad=False)
        self.good_steps = Parameter(Tensor(0, ms.int32), name="good_steps", requires_grad=False)
        self.skipped = Parameter(Tensor(0, ms.int32), name="skipped_steps", requires_grad=False)
        self.loss_sum = Parameter(Tensor(0.0, ms.float32), name="loss_sum", requires_grad=False)
        self.loss_count = Parameter(Tensor(0, ms.int32), name="loss_count", requires_grad=False)
        self.hyper_map = ops.HyperMap()
        self.bn_stats = ms.ParameterTuple(batchnorm_statistics(net_with_loss))

    def construct(self, image, label, noise):
        scale = self.loss_scale
        stats_before = self.hyper_map(ops.deepcopy, self.bn_stats)
        loss = ops.depend(self.net_with_loss(image, label, noise), stats_before)
        grads = self.grad(self.net_with_loss, self.weights)(image, label, noise, scale.astype(loss.dtype))
        grads = self.grad_reducer(grads)
        grads = self.hyper_map(ops.partial(_unscale, scale), grads)
        finite = ms.amp.all_finite(grads) if self.check_grads else ops.isfinite(loss)
        loss = ops.depend(loss, self.hyper_map(ops.partial(_keep_if, finite), self.bn_stats, stats_before))
        if finite:
            loss = ops.depend(loss, self.optimizer(grads))
            if self.ema is not None:
                loss = ops.depend(loss, self.ema())
        loss = ops.depend(loss, self._update_scale(finite))
        loss_ok = ops.isfinite(loss)
        loss = ops.depend(loss, ops.assign_add(self.loss_sum, ops.select(loss_ok, loss, ops.zeros_like(loss))
                                               .astype(ms.float32)))
        loss = ops.depend(loss, ops.assign_add(self.loss_count, loss_ok.astype(ms.int32)))
        return loss

    def _update_scale(self, finite):
        # Branch-free so the same graph runs on every backend.
        ok = finite.astype(ms.int32)
        out = ops.assign_add(self.skipped, 1 - ok)
        if self.dynamic:
            good = (self.good_steps + 1) * ok
            grow = good >= self.scale_window
            scale = ops.select(finite, ops.select(grow, self.loss_scale * 2.0, self.loss_scale),
                               ops.maximum(self.loss_scale * 0.5, Tensor(1.0, ms.float32)))
            out = ops.depend(out, ops.assign(self.good_steps, ops.select(grow, ops.zeros_like(good), good)))
            out = ops.depend(out, ops.assign(self.loss_scale, scale))
        return out

    def state_parameters(self) -> dict[str, Parameter]:
        """What a resumed run must restore besides network, EMA and optimizer."""
        return {"loss_scale": self.loss_scale, "good_steps": self.good_steps, "skipped_steps": self.skipped}

    def take_losses(self) -> tuple[float, int]:
        """Host read of the summed finite losses since the last call and how many steps had one (one device sync
        per call, not per step)."""
        value, count = float(self.loss_sum.asnumpy()), int(self.loss_count.asnumpy())
        self.loss_sum.set_data(Tensor(0.0, ms.float32))
        self.loss_count.set_data(Tensor(0, ms.int32))
        return value, count


def _ema_update(decay, average, param):
    # average + (1 - decay)(param - average), as timm's ModelEmaV3 lerp: a parameter that does not move (a frozen
    # backbone) keeps its average bit-identical, where decay·a + (1 - decay)·a rounds
    return ops.assign(average, average + (param.astype(average.dtype) - average) * (1.0 - decay))


def _keep_if(finite, param, before):
    return ops.assign(param, ops.select(finite, param, before))


def _unscale(scale, grad):
    return grad / scale.astype(grad.dtype)


class WithLoss(nn.Cell):
    """net(image, noise) → loss in float32 (under AMP the logits may be float16)."""

    def __init__(self, net: nn.Cell, loss_fn: nn.Cell) -> None:
        super().__init__(auto_prefix=False)
        self.net, self.loss_fn = net, loss_fn

    def construct(self, image, label, noise):
        return self.loss_fn(self.net(image, noise).astype(ms.float32), label)
