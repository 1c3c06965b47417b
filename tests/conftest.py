"""Test-wide settings: float32 at highest matmul precision, as the parity contract states."""

import jax

jax.config.update("jax_default_matmul_precision", "highest")
