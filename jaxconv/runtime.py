"""Process settings that make XLA:CPU faster, opt-in: `reuse_host_memory`."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
import warnings

# mallopt(3) parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -4, -8


def reuse_host_memory() -> bool:
    """Makes glibc's malloc keep freed memory for reuse instead of returning it to the OS.

    Every XLA:CPU execution allocates its temporaries (71 MB for mnist_net's
    training step at batch 128) and Eigen's convolutions their packing buffers
    (85 and 200 MB there) afresh. glibc serves allocations that large with
    ``mmap`` and unmaps them on ``free``, so each step touches new pages: ~17,000
    page faults and ~55 ms of kernel time per mnist_net step on this project's
    CPU machine, about a fifth of the step's CPU time. With one malloc arena, no
    ``mmap`` and no trimming, freed blocks are reused: ~1,000 faults and ~7 ms
    (BENCHMARKS.md has the step times).

    Call it once, before the process's first JAX computation: XLA's worker
    threads pick their malloc arena when they start, and threads started earlier
    keep theirs (a warning says so). ``train.py`` calls it (flag
    ``--reuse_host_memory``, on by default). The cost: the process keeps its peak heap until it
    exits, and all threads share one arena. Returns whether the settings were
    applied (False, with a warning, where the C library is not glibc).
    """
    if not sys.platform.startswith("linux"):
        warnings.warn("jaxconv.runtime.reuse_host_memory: needs glibc (Linux); nothing changed", stacklevel=2)
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 -- musl and others lack it
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        warnings.warn("jaxconv.runtime.reuse_host_memory: the C library is not glibc; nothing changed", stacklevel=2)
        return False
    from jax._src import xla_bridge  # noqa: PLC0415 -- jax's own check, no public equivalent

    if xla_bridge.backends_are_initialized():
        warnings.warn(
            "jaxconv.runtime.reuse_host_memory: JAX has already run a computation, so XLA's worker threads "
            "keep their own malloc arenas and most of the effect is lost; call it before the first JAX "
            "computation (e.g. right after the imports)", stacklevel=2)
    done = [mallopt(param, value) for param, value in (
        (_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, 2**31 - 1))]
    return all(ok == 1 for ok in done)
