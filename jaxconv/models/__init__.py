"""Seed models as Flax linen modules, by name: ``jaxconv.models.get("lenet5")``.

Contract (shared with the trainer): input ``(N, C, H, W)`` float32;
``variables = model.init({"params": k1, "dropout": k2}, x, train=False)``;
``model.apply(variables, x, train=True, rngs={"dropout": k})`` returns
``(N, num_classes)`` logits (``mnist_net``: log-probabilities, as
pytorch/examples). Parameter names are PyTorch's (``conv1.weight``, ...), and
each model has a PyTorch twin in ``jaxconv.parity.torch_models``, so
`jaxconv.interop.from_torch` loads its state_dict.
"""

from __future__ import annotations

import importlib

import flax.linen as nn

MODELS: dict[str, tuple[str, str]] = {
    "lenet5": ("jaxconv.models.lenet5", "LeNet5"),
    "convnet": ("jaxconv.models.convnet", "ConvNet"),
    "mnist_net": ("jaxconv.models.mnist_net", "MnistNet"),
    "cifar_cnn": ("jaxconv.models.cifar_cnn", "CifarCNN"),
}

__all__ = ["MODELS", "get", "names"]


def names() -> list[str]:
    """The registered model names."""
    return list(MODELS)


def get(name: str, **kwargs) -> nn.Module:
    """The model registered as ``name``, constructed with ``kwargs`` (e.g. ``num_classes=10``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(MODELS)}")
    module, cls = MODELS[name]
    return getattr(importlib.import_module(module), cls)(**kwargs)
