"""jaxconv: PyTorch's convolution functions in JAX/Flax, exact to PyTorch."""

__version__ = "0.1.0"
