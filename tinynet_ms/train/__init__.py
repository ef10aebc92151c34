"""Training components: schedule, optimizer, one-graph train step with loss scaling and EMA, state, metrics."""
from tinynet_ms.train.finetune import freeze_backbone
from tinynet_ms.train.metrics import MetricsLog, evaluate, plot_curves, topk_correct
from tinynet_ms.train.optim import RMSPropTF, create_rmsprop, param_groups
from tinynet_ms.train.schedule import LR_SCALINGS, scaled_lr, step_lr_schedule
from tinynet_ms.train.state import TrainState, changed_conditions, load_train_state, save_train_state
from tinynet_ms.train.step import EMA, TrainStep, WithLoss

__all__ = ["EMA", "LR_SCALINGS", "MetricsLog", "RMSPropTF", "TrainState", "TrainStep", "WithLoss", "changed_conditions", "create_rmsprop", "evaluate", "freeze_backbone",
           "load_train_state", "param_groups", "plot_curves", "save_train_state", "scaled_lr",
           "step_lr_schedule", "topk_correct"]
