"""Shape arithmetic shared by the seed models."""

from __future__ import annotations


def conv_out(size: int, kernel: int, padding: int = 0) -> int:
    return size + 2 * padding - kernel + 1


def pool_out(size: int, kernel: int = 2) -> int:
    return size // kernel


def check_size(model: str, input_size: int, final: int, *, num_classes: int | None = None,
               in_channels: int | None = None) -> None:
    """Rejects a bad ``input_size`` (``final``: the feature-map side it gives) and bad channel counts."""
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{model}: {name} must be an int, got {value!r}")
        if value < 1:
            raise ValueError(f"{model}: {name} must be positive, got {value}")
    if isinstance(input_size, bool) or not isinstance(input_size, int):
        raise TypeError(f"{model}: input_size must be an int, got {input_size!r}")
    if final < 1:
        raise ValueError(f"{model}: input_size={input_size} is too small: the feature map would be empty")
