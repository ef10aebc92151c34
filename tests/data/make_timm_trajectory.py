"""Make ``timm_train_trajectory.npz``: timm's own training of the mini TinyNet (w 0.25, d 0.35, 10 classes, from
the weights ``init_weights`` draws, head dropout 0.2 with masks from ``dropout_noise``) on a fixed sequence of
batches with the paper's optimizer and schedule, as the reference that ``tests/test_train_parity.py`` replays
through tinynet_ms's train step. Run once in a timm environment (torch + timm + numpy), from the repository root:

    PY=$(bash ../shared/tools/timm_reference_env.sh) && $PY tests/data/make_timm_trajectory.py

Neither the initial weights nor the batches are stored: both sides draw them from ``init_weights`` and
``trajectory_batches`` (NumPy's PCG64 streams, which are stable across NumPy versions).
"""
import math
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
# The recipe, written once for the generator and the test.
STEPS, BATCH, SIZE, CLASSES = 80, 16, 32, 10
STEPS_PER_EPOCH, LR, WARMUP_EPOCHS, WARMUP_LR, DECAY_EPOCHS, DECAY_RATE = 20, 0.001, 1.0, 1e-6, 1.0, 0.5
WEIGHT_DECAY, RMSPROP_DECAY, MOMENTUM, EPS, LABEL_SMOOTHING, DROP_RATE = 1e-5, 0.9, 0.9, 1e-3, 0.1, 0.2


def trajectory_batches() -> tuple[np.ndarray, np.ndarray]:
    """(STEPS, BATCH, 3, SIZE, SIZE) float32 images and (STEPS, BATCH) int64 labels: a learnable task, a fixed
    random pattern per class plus noise, so the trajectory has real gradients all the way."""
    rng = np.random.default_rng(20261201)
    patterns = rng.standard_normal((CLASSES, 3, SIZE, SIZE)).astype(np.float32)
    labels = rng.integers(0, CLASSES, size=(STEPS, BATCH))
    noise = rng.standard_normal((STEPS, BATCH, 3, SIZE, SIZE)).astype(np.float32)
    return (patterns[labels] + 0.5 * noise).astype(np.float32), labels


def dropout_noise(num_features: int) -> np.ndarray:
    """(STEPS, BATCH, num_features) uniform noise: the head dropout keeps feature j of sample i where
    noise >= DROP_RATE (tinynet_ms's noise-driven dropout; the reference applies the same mask by hand)."""
    return np.random.default_rng(99).random((STEPS, BATCH, num_features), dtype=np.float32)


def init_weights(shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    """timm's TinyNet init for a state dict given by timm names and shapes: conv N(0, sqrt(2 / fan_out)), dense
    U(±1/sqrt(out)), BN weight 1 / bias 0 / running mean 0 / var 1, biases 0; one stream in sorted-name order."""
    rng = np.random.default_rng(7)
    out = {}
    for name in sorted(shapes):
        shape = shapes[name]
        if name.endswith(("running_var",)) or (name.endswith(".weight") and len(shape) == 1):
            value = np.ones(shape)
        elif len(shape) == 4:
            fan_out = shape[2] * shape[3] * (1 if ".conv_dw." in name else shape[0])
            value = rng.standard_normal(shape) * np.sqrt(2.0 / fan_out)
        elif len(shape) == 2:
            value = rng.uniform(-1.0, 1.0, shape) / np.sqrt(shape[0])
        else:
            value = np.zeros(shape)
        out[name] = value.astype(np.float32)
    return out


def lr_at(step: int) -> float:
    t = step / STEPS_PER_EPOCH
    if t < WARMUP_EPOCHS:
        return WARMUP_LR + t * (LR - WARMUP_LR) / WARMUP_EPOCHS
    return LR * DECAY_RATE ** math.floor(t / DECAY_EPOCHS)


def main() -> int:
    import torch
    from timm.models.efficientnet import _gen_tinynet
    from timm.optim import RMSpropTF

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    model = _gen_tinynet("tinynet_e", model_width=0.25, depth_multiplier=0.35, num_classes=CLASSES, drop_rate=0.0)
    state = model.state_dict()
    weights = init_weights({k: tuple(v.shape) for k, v in state.items() if not k.endswith("num_batches_tracked")})
    model.load_state_dict({k: torch.from_numpy(weights[k]) if k in weights else v for k, v in state.items()})
    init = {k: v.detach().clone() for k, v in model.named_parameters()}
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    opt = RMSpropTF([{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}],
                    lr=LR, alpha=RMSPROP_DECAY, eps=EPS, momentum=MOMENTUM)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=LABEL_SMOOTHING)
    images, labels = trajectory_batches()
    noise = torch.from_numpy(dropout_noise(model.num_features))

    def forward(x, u):  # timm's forward with the head dropout's mask taken from ``u``
        x = model.global_pool(model.forward_features(x))
        return model.classifier(x * (u >= DROP_RATE).float() / (1.0 - DROP_RATE))

    model.train()
    losses = []
    for step in range(STEPS):
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        opt.zero_grad()
        loss = loss_fn(forward(torch.from_numpy(images[step]), noise[step]), torch.from_numpy(labels[step]))
        loss.backward()
        opt.step()
        losses.append(loss.item())
    # The update each trainable tensor took, in timm's names; float16 keeps the file small (rel. precision 5e-4).
    deltas = {f"delta/{k}": (p.detach() - init[k]).numpy().astype(np.float16) for k, p in model.named_parameters()}
    np.savez_compressed(HERE / "timm_train_trajectory.npz", losses=np.array(losses), **deltas)
    print(f"losses {losses[0]:.4f} -> {losses[-1]:.4f}; wrote {HERE / 'timm_train_trajectory.npz'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
