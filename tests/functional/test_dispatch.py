"""impl="auto"'s decision table (`_dispatch.select_plan`) and the explicit plan syntax."""

import jax
import jax.numpy as jnp
import pytest

from jaxconv import functional as F
from jaxconv.functional import _dispatch
from jaxconv.functional._spec import conv_spec
from jaxconv.functional._vjp import Plan


def _spec(x_shape, w_shape, nd=2, transposed=False, **kw):
    kw = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, **kw}
    return conv_spec("op", x_shape, w_shape, nd=nd, channels_last=False, transposed=transposed, **kw)


def _plan(x_shape, w_shape, backend="cpu", **kw):
    spec = _spec(x_shape, w_shape, nd=len(x_shape) - 2, **kw)
    return _dispatch.select_plan("auto", spec, x_shape, w_shape, backend=backend)


def test_gpu_and_tpu_keep_lax_autodiff():
    for backend in ("gpu", "cuda", "tpu"):
        assert _plan((8, 32, 26, 26), (64, 32, 3, 3), backend=backend) == Plan("lax")


def test_cpu_decision_table():
    assert _plan((8, 32, 26, 26), (64, 32, 3, 3)) == Plan("eigen")
    assert _plan((8, 64, 32, 32), (128, 64, 3, 3), stride=2, padding=1) == Plan("eigen", "lax", "autodiff")
    assert _plan((8, 16, 12, 12), (32, 16, 5, 5)) == Plan("eigen")                     # 16 channels: eigen
    # Banded fit: the toeplitz input grad; also its forward where XLA would send the conv to
    # YNNPACK (max(C_in, C_out) > 16, cin/g < 16) and the band wastes at most 3x.
    assert _plan((8, 10, 12, 12), (20, 10, 5, 5)) == Plan("toeplitz", "autodiff", "eigen")  # convnet conv2
    assert _plan((8, 10, 16, 16), (20, 10, 5, 5)) == Plan("lax", "toeplitz", "eigen")  # 16 > 3 * 5
    assert _plan((8, 12, 14, 14), (18, 12, 3, 3)) == Plan("lax", "toeplitz", "eigen")  # 14 > 3 * 3
    assert _plan((8, 6, 12, 12), (16, 6, 5, 5)) == Plan("lax", "toeplitz", "eigen")    # lenet5 conv2: no YNNPACK
    assert _plan((8, 6, 28, 28), (16, 6, 5, 5), padding=2) == Plan("lax", "eigen", "eigen")
    # Few taps per output (cin/g * prod(k) <= 32), stride 1: "shift"; its input grad while
    # cout/g * prod(k) <= 160, else toeplitz where the band fits, else lax.
    assert _plan((8, 1, 28, 28), (6, 1, 5, 5)) == Plan("shift", "shift", "eigen")      # lenet5 conv1
    assert _plan((8, 1, 28, 28), (10, 1, 5, 5)) == Plan("shift", "toeplitz", "eigen")  # convnet conv1
    assert _plan((8, 1, 28, 28), (32, 1, 3, 3)) == Plan("shift", "lax", "eigen")       # mnist_net conv1
    assert _plan((8, 3, 32, 32), (32, 3, 3, 3), padding=1) == Plan("shift", "lax", "eigen")  # RGB stem
    assert _plan((8, 3, 32, 32), (8, 3, 3, 3), dilation=2) == Plan("shift", "shift", "eigen")
    assert _plan((8, 1, 28, 28), (6, 1, 5, 5), stride=2) == Plan("lax", "autodiff", "eigen")  # strided: no shift
    assert _plan((8, 6, 12, 12), (16, 6, 3, 3)) == Plan("lax", "toeplitz", "eigen")    # 54 taps: no shift
    assert _plan((8, 1, 1024), (16, 1, 9)) == Plan("shift", "shift", "lax")            # 1D first layer
    assert _plan((8, 2, 4000), (32, 2, 11)) == Plan("shift", "lax", "lax")
    assert _plan((4, 1, 32, 32, 32), (16, 1, 3, 3, 3)) == Plan("shift", "lax", "autodiff")  # 3D: autodiff dw
    # Grouped (not depthwise) 1D/2D, up to 32 groups: group by group, each by the ungrouped row.
    assert _plan((8, 64, 32, 32), (64, 16, 3, 3), groups=4) == Plan("lax", "eigen", "eigen", per_group=True)
    assert _plan((8, 64, 32, 32), (64, 32, 3, 3), groups=2) == Plan("eigen", per_group=True)
    assert _plan((8, 128, 32, 32), (128, 4, 3, 3), groups=32, stride=2) == Plan(
        "lax", "autodiff", "eigen", per_group=True)
    assert _plan((8, 128, 32, 32), (128, 2, 3, 3), groups=64, stride=2) == Plan("lax", "autodiff", "gemm")
    assert _plan((8, 16, 8, 8, 8), (16, 8, 3, 3, 3), groups=2) == Plan("lax", "autodiff", "gemm")  # 3D: joint
    assert _plan((8, 64, 16, 16), (64, 16, 4, 4), stride=2, padding=1, groups=4,
                 transposed=True) == Plan("subpixel", per_group=True)
    assert _plan((8, 64, 16, 16), (64, 1, 4, 4), stride=2, groups=64, transposed=True) == Plan("shift", "shift", "gemm")
    assert _plan((8, 64, 16, 16), (64, 2, 3, 3), groups=64, transposed=True) == Plan("shift", "shift", "gemm")
    # Depthwise: "shift", its scan weight grad; the shift input grad unless multiplier 1, stride 1, <= 9 taps.
    assert _plan((8, 64, 32, 32), (64, 1, 3, 3), groups=64) == Plan("shift", "autodiff", "shift")
    assert _plan((8, 64, 32, 32), (64, 1, 3, 3), groups=64, stride=2) == Plan("shift", "shift", "shift")
    assert _plan((8, 64, 32, 32), (64, 1, 5, 5), groups=64) == Plan("shift", "shift", "shift")
    assert _plan((8, 64, 32), (128, 1, 3), groups=64) == Plan("shift", "shift", "shift")  # multiplier 2
    assert _plan((8, 64, 32), (64, 1, 7), groups=64) == Plan("shift", "autodiff", "shift")
    assert _plan((8, 8, 32, 32), (64, 1, 7, 7), groups=8) == Plan("shift", "lax", "shift")  # 8 x 49 taps
    # ... the weight grad by autodiff past 2**25 carried elements (taps x C_out x output size).
    assert _plan((1, 64, 512, 512), (64, 1, 3, 3), groups=64, padding=1) == Plan("shift", "autodiff", "autodiff")
    assert _plan((1, 64, 128, 128), (64, 1, 3, 3), groups=64, padding=1) == Plan("shift", "autodiff", "shift")
    # Strided transposed: "subpixel" while its phase kernels are no longer than the kernel; in 2D
    # ungrouped with autodiff (eigen-form convolutions), else XLA's input gradient and the GEMM
    # weight gradient; stride 1 has nothing to split.
    assert _plan((8, 64, 16, 16), (64, 32, 4, 4), stride=2, padding=1, transposed=True) == Plan("subpixel")
    assert _plan((8, 64, 16, 16), (64, 32, 2, 2), stride=2, transposed=True) == Plan("subpixel")
    assert _plan((8, 64, 16, 16), (64, 32, 3, 3), stride=2, padding=1, output_padding=1,
                 transposed=True) == Plan("subpixel")
    assert _plan((8, 64, 16, 16), (64, 32, 3, 3), stride=2, dilation=2, transposed=True) == Plan("subpixel")
    assert _plan((8, 64, 16, 16), (64, 32, 3, 3), stride=2, dilation=3, transposed=True) == Plan("eigen", "lax", "gemm")
    # Stride-1 transposed: an ordinary weight-gradient convolution, eigen's.
    assert _plan((8, 64, 16, 16), (64, 32, 3, 3), padding=1, transposed=True) == Plan("eigen", "lax", "eigen")
    assert _plan((8, 1, 56, 56), (1, 64, 3, 3), padding=1, transposed=True) == Plan("lax", "lax", "eigen")
    assert _plan((8, 64, 64), (64, 32, 4), stride=2, padding=1, transposed=True) == Plan("subpixel", "lax", "gemm")
    assert _plan((2, 32, 8, 8, 8), (32, 16, 3, 3, 3), stride=2, padding=1, output_padding=1,
                 transposed=True) == Plan("subpixel", "lax", "gemm")
    assert _plan((8, 64, 32, 32), (128, 64, 1, 1)) == Plan("im2col")                   # pointwise: a GEMM
    assert _plan((8, 64, 32, 32), (128, 16, 1, 1), groups=4, stride=2) == Plan("im2col")
    assert _plan((8, 64, 256), (128, 64, 1)) == Plan("im2col")
    assert _plan((8, 64, 16, 16), (64, 1, 1, 1), groups=64) == Plan("shift")           # depthwise 1x1
    assert _plan((8, 64, 256), (64, 64, 5)) == Plan("lax")                              # 1D: no YNNPACK
    assert _plan((8, 64, 256), (64, 16, 5), groups=4) == Plan("lax", per_group=True)


def test_toeplitz_needs_the_input_shape_and_no_groups():
    spec = _spec((8, 1, 28, 28), (10, 1, 5, 5))
    assert _dispatch.select_plan("auto", spec, w_shape=(10, 1, 5, 5), backend="cpu") == Plan("shift", "lax", "eigen")
    x = jnp.zeros((1, 1, 28, 28))
    assert F.explain("conv2d", jnp.zeros((1, 28, 28, 1)), jnp.zeros((10, 1, 5, 5)), channels_last=True) == {
        "forward": "shift", "input_grad": "toeplitz", "weight_grad": "eigen", "groups": "joint"}
    # A grouped conv gets it only group by group, where each group is an ungrouped conv.
    assert _plan((8, 4, 12, 12), (8, 2, 5, 5), groups=2) == Plan("lax", "toeplitz", "eigen", per_group=True)
    assert F.explain("conv2d", jnp.zeros((1, 12, 12, 4)), jnp.zeros((8, 2, 5, 5)), groups=2,
                     channels_last=True)["input_grad"] == "toeplitz"
    with pytest.raises(ValueError, match="groups"):
        F.conv2d(jnp.zeros((1, 2, 8, 8)), jnp.zeros((2, 1, 3, 3)), groups=2, impl="toeplitz")
    with pytest.raises(ValueError, match="groups"):
        F.conv2d(jnp.zeros((1, 2, 8, 8)), jnp.zeros((2, 1, 3, 3)), groups=2, impl="lax/toeplitz/eigen")
    with pytest.raises(ValueError, match="transposed"):
        F.conv_transpose2d(x, jnp.zeros((1, 2, 3, 3)), impl="toeplitz")


def test_explicit_plans_and_plain_names():
    spec = _spec((2, 4, 8, 8), (4, 4, 3, 3))
    assert _dispatch.select_plan("lax", spec) == Plan("lax")
    assert _dispatch.select_plan("eigen/autodiff/gemm", spec) == Plan("eigen", "autodiff", "gemm")
    assert _dispatch.select_impl("lax/lax/gemm", spec) == "lax"
    assert _dispatch.select_impl("auto", spec, backend="cpu") == "eigen"
    assert _dispatch.explain("auto", spec, w_shape=(4, 4, 3, 3), backend="cpu") == {
        "forward": "lax", "input_grad": "eigen", "weight_grad": "eigen", "groups": "joint"}
    assert not Plan("lax").custom and Plan("lax", "lax", "gemm").custom
    assert _dispatch.select_plan("eigen/eigen/gemm/per_group", spec) == Plan("eigen", "eigen", "gemm", per_group=True)


def test_plain_convs_keep_forward_mode():
    """Where "auto" needs no custom rule, jax.jvp (forward mode) still works."""
    import jax
    import numpy as np
    x, w = np.ones((2, 32, 8, 8), np.float32), np.ones((32, 32, 3, 3), np.float32)
    y, t = jax.jvp(lambda x_: F.conv2d(x_, w), (x,), (x,))
    assert np.allclose(y, t)


@pytest.mark.parametrize("bad", ["LAX", "lax/gemm", "lax/gemm/lax", "banded/lax/lax", "lax/lax/toeplitz", "lax/lax/fft", "",
                                 "lax/lax/lax/split", "lax/lax/lax/per_group/x", "auto/lax/lax/per_group"])
def test_bad_impl_names_are_rejected(bad):
    with pytest.raises(ValueError, match="impl"):
        _dispatch.check_impl(bad)
    with pytest.raises(ValueError, match="impl"):
        F.conv2d(__import__("numpy").zeros((1, 1, 3, 3), "float32"), __import__("numpy").zeros((1, 1, 1, 1), "float32"),
                 impl=bad)


@pytest.mark.parametrize("bad", [None, 3, ("lax",)])
def test_non_string_impl_is_a_type_error(bad):
    import numpy as np
    with pytest.raises(TypeError, match="impl must be a str"):
        F.conv2d(np.zeros((1, 1, 3, 3), np.float32), np.zeros((1, 1, 1, 1), np.float32), impl=bad)


def test_unsupported_forward_still_checked():
    """An fft forward keeps its own support check (stride-1 only) inside a plan."""
    import numpy as np
    x, w = np.zeros((1, 2, 8, 8), np.float32), np.zeros((2, 2, 3, 3), np.float32)
    with pytest.raises(ValueError):
        F.conv2d(x, w, stride=2, impl="fft/lax/gemm")


def test_public_explain_describes_a_call_by_its_arguments():
    x, w = jax.ShapeDtypeStruct((128, 32, 26, 26), jnp.float32), jnp.zeros((64, 32, 3, 3))
    assert F.explain("conv2d", x, w, padding=1) == dict(_dispatch.explain(
        "auto", _spec((128, 32, 26, 26), (64, 32, 3, 3), padding=1), (128, 32, 26, 26), (64, 32, 3, 3)))
    assert F.explain("conv2d", x, w, impl="lax") == {
        "forward": "lax", "input_grad": "autodiff", "weight_grad": "autodiff", "groups": "joint"}
    with pytest.raises(ValueError, match="op must be one of"):
        F.explain("conv4d", x, w)
    with pytest.raises(TypeError, match="output_padding"):
        F.explain("conv2d", x, w, output_padding=1)
    # An impl that cannot compute the call: explain raises what the call raises.
    with pytest.raises(ValueError, match="stride"):
        F.explain("conv2d", x, w, impl="fft", stride=2)
    with pytest.raises(ValueError, match="groups"):
        F.explain("conv_transpose2d", jnp.zeros((1, 4, 5, 5)), jnp.zeros((4, 2, 3, 3)), groups=2,
                  impl="lax/toeplitz/gemm")
