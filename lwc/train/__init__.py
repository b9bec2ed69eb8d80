"""Training on the IR: reverse-mode autodiff, optimisers, datasets and the training loop."""

from lwc.train.autodiff import backward, differentiable_ops, forward, register_vjp
from lwc.train.data import Dataset
from lwc.train.optim import SGD, Adam, make_optimizer
from lwc.train.trainer import (Masked, Shared, SignSTE, Trainer, accuracy, predict,
                               show_progress)

__all__ = ["SGD", "Adam", "Dataset", "Masked", "Shared", "SignSTE", "Trainer", "accuracy",
           "backward", "differentiable_ops", "forward", "make_optimizer", "predict",
           "register_vjp", "show_progress"]
