"""Which algorithm computes a convolution and its gradients: the ``impl=`` keyword.

``"lax"``    ``jax.lax.conv_general_dilated`` (XLA's convolution), XLA autodiff.
``"eigen"``  the same XLA convolution rewritten (exactly) so that XLA:CPU runs it on
             its Eigen kernels rather than YNNPACK (``_vjp._conv_off_ynn``).
``"im2col"`` patches gathered by hand + one (batched-over-groups) GEMM; transposed
             convolution by GEMM into columns + col2im scatter-add.
``"fft"``    the convolution theorem (stride-1 convolutions only).
``"auto"``   the default: picks a `Plan` (forward algorithm + gradient rules of
             ``_vjp``) per call; `select_plan` / `explain` say which.
``"F/DX/DW"`` an explicit plan, e.g. ``"lax/lax/gemm"``: forward ``F``, input
             gradient rule ``DX`` and weight gradient rule ``DW`` (see ``_vjp``).

All of them compute the same function (checked against PyTorch in ``tests/``).

Decision table of ``"auto"`` (TABLE, below, is filled in from the measurements).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax

from jaxconv.functional._spec import ConvSpec
from jaxconv.functional._vjp import INPUT_GRAD_RULES, WEIGHT_GRAD_RULES, Plan, conv_with_plan

IMPLS = ("auto", "lax", "eigen", "im2col", "fft")
FORWARDS = ("lax", "eigen", "im2col", "fft")
MIN_EIGEN_CHANNELS = 8  # input channels per group from which "eigen" beats YNNPACK's forward


def parse_plan(impl: str) -> Plan | None:
    """The `Plan` an explicit ``"F/DX/DW"`` impl names (``None`` for the plain names)."""
    parts = impl.split("/")
    if len(parts) != 3:
        return None
    return Plan(*parts)


def check_impl(impl: str) -> str:
    if impl in IMPLS:
        return impl
    try:
        if isinstance(impl, str) and parse_plan(impl) is not None:
            return impl
    except ValueError as e:
        raise ValueError(f"impl {impl!r}: {e}") from None
    raise ValueError(
        f"impl must be one of {IMPLS} or 'forward/input_grad/weight_grad' with forward in "
        f"{FORWARDS}, input_grad in {INPUT_GRAD_RULES}, weight_grad in {WEIGHT_GRAD_RULES}; "
        f"got {impl!r}"
    )


def select_plan(impl: str, spec: ConvSpec, x_shape: Sequence[int] | None = None,
                w_shape: Sequence[int] | None = None, channels_last: bool = False,
                backend: str | None = None) -> Plan:
    """The `Plan` ``impl`` resolves to for a call.

    ``w_shape`` (PyTorch layout) refines ``"auto"``'s choice; without it the
    call is assumed to have many channels per group. ``backend`` defaults to
    ``jax.default_backend()``.
    """
    check_impl(impl)
    explicit = parse_plan(impl)
    if explicit is not None:
        return explicit
    if impl != "auto":
        return Plan(impl)
    backend = backend or jax.default_backend()
    if backend != "cpu":
        return Plan("lax")
    return _cpu_plan(spec, w_shape)


def _cpu_plan(spec: ConvSpec, w_shape: Sequence[int] | None) -> Plan:
    """Rows 1-5 of the decision table in the module docstring."""
    if w_shape is None:
        cin_per_group = 2 * MIN_EIGEN_CHANNELS
    elif spec.transposed:
        cin_per_group = w_shape[0] // spec.groups
    else:
        cin_per_group = w_shape[1]
    grouped = spec.groups > 1
    if cin_per_group == 1 and grouped:             # depthwise: XLA's own rules
        return Plan("lax")
    gemm_dw = spec.transposed or grouped
    if spec.nd != 2:                               # no YNNPACK outside 2D
        return Plan("lax", "autodiff", "gemm") if gemm_dw else Plan("lax")
    forward = "eigen" if cin_per_group >= MIN_EIGEN_CHANNELS else "lax"
    strided = any(s > 1 for s in spec.stride)
    dx = "lax" if strided or spec.transposed else "eigen"
    dw = "gemm" if gemm_dw else "eigen"
    return Plan(forward, dx, dw)


def explain(impl: str, spec: ConvSpec, x_shape: Sequence[int] | None = None,
            w_shape: Sequence[int] | None = None, channels_last: bool = False,
            backend: str | None = None) -> dict[str, str]:
    """``{"forward": ..., "input_grad": ..., "weight_grad": ...}`` for a call, as `select_plan`."""
    plan = select_plan(impl, spec, x_shape, w_shape, channels_last, backend)
    return {"forward": plan.forward, "input_grad": plan.input_grad, "weight_grad": plan.weight_grad}


def select_impl(impl: str, spec: ConvSpec, x_shape: Sequence[int] | None = None,
                w_shape: Sequence[int] | None = None, channels_last: bool = False,
                backend: str | None = None) -> str:
    """The forward algorithm ``impl`` resolves to for a call with ``spec``."""
    return select_plan(impl, spec, x_shape, w_shape, channels_last, backend).forward


def implementation(impl: str, spec: ConvSpec, op: str) -> Callable:
    """The function ``(x, w, spec, channels_last) -> y`` that computes the call."""
    check_impl(impl)

    def run(x, w, spec, channels_last):
        plan = select_plan(impl, spec, x.shape, w.shape, channels_last)
        _check_supported(plan.forward, spec, op)
        return conv_with_plan(plan)(x, w, spec, channels_last)

    if impl != "auto":
        _check_supported(select_plan(impl, spec).forward, spec, op)
    return run


def _check_supported(forward: str, spec: ConvSpec, op: str) -> None:
    import importlib

    if forward == "eigen":
        return
    module = importlib.import_module(f"jaxconv.functional._{forward}")
    check = getattr(module, "check_supported", None)
    if check is not None:
        check(spec, op)
