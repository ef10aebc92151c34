"""Training parts: LR schedule, weight-decay groups, AMP train step with loss scaling, EMA, state round-trip."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import nn

from tinynet_ms import create_model
from tinynet_ms.train import (EMA, TrainState, TrainStep, WithLoss, changed_conditions, create_rmsprop,
                              load_train_state, param_groups, save_train_state, scaled_lr, step_lr_schedule,
                              topk_correct)

MINI = dict(w=0.25, d=0.35, num_classes=4)


def test_step_lr_schedule():
    lr = step_lr_schedule(0.048, steps_per_epoch=10, epochs=10, warmup_epochs=3, warmup_lr=1e-6,
                          decay_epochs=2.4, decay_rate=0.97)
    assert lr.shape == (100,) and lr[0] == pytest.approx(1e-6)
    assert lr[15] == pytest.approx(1e-6 + 1.5 * (0.048 - 1e-6) / 3)  # linear warmup, per step
    assert lr[30] == pytest.approx(0.048 * 0.97)  # epoch 3.0: floor(3 / 2.4) = 1 decay
    assert lr[48] == pytest.approx(0.048 * 0.97 ** 2) and lr[47] == pytest.approx(0.048 * 0.97)


def test_linear_lr_scaling_follows_the_global_batch():
    assert scaled_lr(0.048, "linear", 1024, 2 * 32) == pytest.approx(0.048 * 64 / 1024)
    assert scaled_lr(0.048, "linear", 1024, 8 * 128) == 0.048  # the paper's own batch keeps its lr
    assert scaled_lr(0.048, "none", 1024, 64) == 0.048
    with pytest.raises(ValueError, match="lr_scaling 'sqrt'"):
        scaled_lr(0.048, "sqrt", 1024, 64)
    with pytest.raises(ValueError, match="positive batches"):
        scaled_lr(0.048, "linear", 0, 64)


def test_no_weight_decay_on_bn_and_bias():
    decay, no_decay = param_groups(create_model("tinynet", **MINI), 1e-5)
    assert decay["weight_decay"] == 1e-5 and no_decay["weight_decay"] == 0.0
    assert all(p.name.endswith(".weight") for p in decay["params"])
    assert {p.name.rsplit(".", 1)[1] for p in no_decay["params"]} == {"gamma", "beta", "bias"}
    assert "classifier.weight" in {p.name for p in decay["params"]}


def test_topk_correct():
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.05]], np.float32)
    assert topk_correct(logits, np.array([1, 2]), (1, 5)) == [1, 2]  # k capped at the class count


def _batch(seed=0, n=8):
    rng = np.random.default_rng(seed)
    return (ms.Tensor(rng.standard_normal((n, 3, 32, 32)).astype(np.float32)),
            ms.Tensor(rng.integers(0, 4, n).astype(np.int32)))


def _train_step(amp="O0", dynamic=False, ema_decay=0.0, lr=0.001, loss_scale=256.0, check_grads=True):
    ms.set_context(mode=ms.GRAPH_MODE)
    net = create_model("tinynet", drop_rate=0.2, drop_path_rate=0.1, **MINI)
    ema_net = create_model("tinynet", **MINI) if ema_decay else None
    ema = EMA(net, ema_net, ema_decay) if ema_decay else None
    opt = create_rmsprop(net, np.full(1000, lr, np.float32))
    amp_net = ms.amp.auto_mixed_precision(net, amp) if amp != "O0" else net
    step = TrainStep(WithLoss(amp_net, nn.CrossEntropyLoss(label_smoothing=0.1)), opt, loss_scale, dynamic, ema=ema,
                     check_grads=check_grads)
    step.set_train(True)
    return net, ema_net, opt, step


@pytest.mark.slow
@pytest.mark.parametrize("amp", ["O2", "O3"])
def test_amp_train_step_with_fixed_loss_scale_learns(amp):
    net, _, opt, step = _train_step(amp)
    image, label = _batch()
    noise = ms.Tensor(np.random.default_rng(1).random((8, net.noise_size), dtype=np.float32))
    losses = [float(step(image, label, noise).asnumpy()) for _ in range(12)]
    assert np.isfinite(losses).all()
    assert min(losses[-4:]) < losses[0] * 0.6, losses
    assert int(step.skipped.asnumpy()) == 0 and float(step.loss_scale.asnumpy()) == 256.0
    assert int(opt.global_step.asnumpy()[0]) == 12


@pytest.mark.slow
@pytest.mark.parametrize("dynamic,check_grads", [(True, True), (False, False)], ids=["dynamic", "fixed-loss-guard"])
def test_overflow_steps_are_skipped_and_counted(dynamic, check_grads):
    """Both guards: all gradients (dynamic scale, AMP) and the loss alone (float32 at a fixed scale)."""
    net, _, opt, step = _train_step(dynamic=dynamic, loss_scale=1024.0, check_grads=check_grads)
    image, label = _batch()
    bad = ms.Tensor(np.full((8, 3, 32, 32), np.inf, np.float32))
    noise = ms.Tensor(np.zeros((8, net.noise_size), np.float32))
    before = {p.name: p.asnumpy().copy() for p in net.get_parameters()}
    step(bad, label, noise)
    assert int(step.skipped.asnumpy()) == 1 and int(opt.global_step.asnumpy()[0]) == 0
    assert float(step.loss_scale.asnumpy()) == (512.0 if dynamic else 1024.0)  # dynamic: halved on overflow
    stats = [p for p in net.get_parameters() if p.name.endswith(("moving_mean", "moving_variance"))]
    assert len(stats) > 10
    for p in net.get_parameters():  # weights and BN statistics alike: an inf batch leaves no trace
        np.testing.assert_array_equal(p.asnumpy(), before[p.name], err_msg=p.name)
    step(image, label, noise)
    assert int(step.skipped.asnumpy()) == 1 and int(opt.global_step.asnumpy()[0]) == 1
    assert any(not np.array_equal(p.asnumpy(), before[p.name]) for p in stats)  # a finite step does update them


def test_dynamic_loss_scale_needs_the_gradient_check():
    net = create_model("tinynet", **MINI)
    with pytest.raises(ValueError, match="check_grads"):
        TrainStep(WithLoss(net, nn.CrossEntropyLoss()), create_rmsprop(net, np.full(4, 1e-3, np.float32)), 8.0,
                  dynamic=True, check_grads=False)


@pytest.mark.slow
def test_ema_tracks_weights_and_state_round_trips(tmp_path):
    net, ema_net, opt, step = _train_step(ema_decay=0.5)
    image, label = _batch()
    noise = ms.Tensor(np.zeros((8, net.noise_size), np.float32))
    w0 = net.conv_stem.weight.asnumpy().copy()
    step(image, label, noise)
    w1 = net.conv_stem.weight.asnumpy()
    np.testing.assert_allclose(ema_net.get_parameters().__next__().asnumpy(), 0.5 * w0 + 0.5 * w1, rtol=1e-5,
                               atol=1e-7)
    saved = TrainState(3, 0.5, 2, data_workers=4, cpu_threads=8, global_batch=64)
    path = save_train_state(tmp_path / "last.ckpt", net, opt, step, saved, ema_net)
    net2, ema2, opt2, step2 = _train_step(ema_decay=0.5)
    state = load_train_state(path, net2, opt2, step2, ema2)
    assert state == saved
    for a, b in [(net, net2), (ema_net, ema2)]:
        for p, q in zip(a.get_parameters(), b.get_parameters()):
            np.testing.assert_array_equal(p.asnumpy(), q.asnumpy())
    slots = dict(opt.parameters_and_names())
    restored = [n for n, p in opt2.parameters_and_names() if n.startswith(("moment.", "mean_square.", "global_step"))]
    assert len(restored) == 2 * len(net.trainable_params()) + 1
    for name in restored:
        np.testing.assert_array_equal(dict(opt2.parameters_and_names())[name].asnumpy(), slots[name].asnumpy())
    assert int(opt2.global_step.asnumpy()[0]) == 1
    # A training checkpoint is also a plain weights file for create_model.
    loaded = create_model("tinynet", checkpoint_path=path, **MINI)
    np.testing.assert_array_equal(loaded.conv_stem.weight.asnumpy(), w1)


def test_resume_names_what_keeps_it_from_being_bit_identical():
    """A resume is bit-identical only with the same data-worker and CPU-thread counts and global batch (another
    device count also changes the steps per epoch and a linearly scaled lr); a changed one is named, one not
    recorded (an older checkpoint: 0) is not guessed at."""
    saved = TrainState(3, 0.5, 2, data_workers=4, cpu_threads=8, global_batch=64)
    assert changed_conditions(saved, TrainState(data_workers=4, cpu_threads=8, global_batch=64)) == []
    changed = changed_conditions(saved, TrainState(data_workers=1, cpu_threads=2, global_batch=32))
    assert len(changed) == 3 and "data workers" in changed[0] and "4 then, 1 now" in changed[0]
    assert "CPU kernel threads" in changed[1] and "8 then, 2 now" in changed[1]
    assert changed[2].startswith("global batch") and "lr follow it): 64 then, 32 now" in changed[2]
    assert changed_conditions(TrainState(3, 0.5, 2), TrainState(data_workers=1, cpu_threads=2, global_batch=8)) == []


@pytest.mark.slow
def test_bn_statistics_sync_keeps_the_ema_attached_to_the_train_step():
    """Rewriting BN statistics between epochs (the cross-rank average) must not detach the EMA copy from the
    compiled train step — a host-side set_data does, and the EMA's statistics then freeze."""
    from src.trainer import AssignParameters
    from tinynet_ms.weights import named_params

    ms.set_context(mode=ms.GRAPH_MODE)
    net = create_model("tinynet", w=0.25, d=0.35, num_classes=10)
    ema_net = create_model("tinynet", w=0.25, d=0.35, num_classes=10, drop_rate=0.0)
    step = TrainStep(WithLoss(net, nn.CrossEntropyLoss()), create_rmsprop(net, np.full(40, 1e-3, np.float32)), 1.0,
                     dynamic=False, ema=EMA(net, ema_net, 0.5))
    step.set_train(True)
    rng = np.random.default_rng(0)
    y = ms.Tensor(rng.integers(0, 10, 8).astype(np.int32))
    noise = ms.Tensor(rng.random((8, net.noise_size), dtype=np.float32))

    def train(scale: float, steps: int) -> None:
        x = ms.Tensor((rng.standard_normal((8, 3, 32, 32)) * scale).astype(np.float32))
        for _ in range(steps):
            step(x, y, noise)

    train(1.0, 5)
    stats = [p for n in (net, ema_net) for name, p in named_params(n).items() if name.endswith("moving_variance")]
    AssignParameters(stats)(tuple(ms.Tensor(p.asnumpy(), p.dtype) for p in stats))
    train(10.0, 15)  # inputs 10x larger: the variances grow ~100x, and the EMA must follow
    model, ema = named_params(net)["bn1.moving_variance"].asnumpy(), named_params(ema_net)["bn1.moving_variance"].asnumpy()
    assert model.mean() > 10 and abs(ema.mean() / model.mean() - 1) < 0.2


@pytest.mark.parametrize("cpus,local,asked,expected", [(2, 2, 8, 1), (2, 1, 8, 2), (16, 2, 8, 8), (2, 2, 1, 1)])
def test_data_workers_are_capped_to_the_ranks_share_of_cpus(monkeypatch, caplog, cpus, local, asked, expected):
    """An 8-worker ImageNet config on a 2-core machine with 2 ranks: 1 worker each, one log line saying so."""
    from types import SimpleNamespace

    from src import context

    monkeypatch.setattr(context, "available_cpus", lambda: cpus)
    monkeypatch.setenv("TINYNET_LOCAL_WORKERS", str(local))
    with caplog.at_level("INFO", logger="tinynet"):
        got = context.data_workers(SimpleNamespace(num_parallel_workers=asked), context.RunContext("CPU", 0, local))
    assert got == expected
    assert ("capped to" in caplog.text) == (asked > expected)


@pytest.mark.slow  # over a second (a compile or a process): CI tier, not the quick one
def test_ema_of_a_deep_network_compiles_and_averages_every_parameter():
    # d = 2: ~620 parameters; a Python loop over them unrolled past MindSpore's call-depth limit (1000) in graph
    # mode (a cube-search candidate at d = 1.56 failed to compile its train step that way)
    ms.set_context(mode=ms.GRAPH_MODE)
    deep = dict(r=0.2, w=0.25, d=2.0, num_classes=4)
    net, ema_net = create_model("tinynet", **deep), create_model("tinynet", **deep)
    for p in ema_net.get_parameters():  # one graph holds both networks: unique names, as a train step's cells get
        p.name = "ema." + p.name
    ema = EMA(net, ema_net, 0.75)  # starts as a copy of the network
    params = list(net.get_parameters())
    assert len(params) > 500
    start = [p.asnumpy().copy() for p in params]
    for p in params:
        p.set_data(ms.Tensor(np.full(p.shape, 4.0, np.float32)))
    ema()
    for before, average in zip(start, ema_net.get_parameters()):
        np.testing.assert_allclose(average.asnumpy(), 0.75 * before + 0.25 * 4.0, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
def test_a_loss_scale_past_float32s_reach_is_guarded_on_the_gradients():
    """Issue 33: --loss_scale 1e38 in float32, where the loss alone was checked: the loss stayed finite, the scaled
    gradients overflowed and the step applied them (NaN weights; the run then blamed the lr). Now a scale past
    LOSS_GUARD_MAX_SCALE checks every gradient: the step is skipped and leaves no trace."""
    net, _, opt, step = _train_step(loss_scale=1e38, check_grads=False)
    image, label = _batch()
    noise = ms.Tensor(np.random.default_rng(1).random((8, net.noise_size), dtype=np.float32))  # zeros drop it all
    before = {p.name: p.asnumpy().copy() for p in net.get_parameters()}
    loss = float(step(image, label, noise).asnumpy())
    assert np.isfinite(loss) and step.take_losses() == (pytest.approx(loss), 1)
    assert int(step.skipped.asnumpy()) == 1 and int(opt.global_step.asnumpy()[0]) == 0
    for p in net.get_parameters():
        np.testing.assert_array_equal(p.asnumpy(), before[p.name], err_msg=p.name)
