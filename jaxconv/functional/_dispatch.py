"""Which algorithm computes a convolution and its gradients: the ``impl=`` keyword.

``"lax"``    ``jax.lax.conv_general_dilated`` (XLA's convolution), XLA autodiff.
``"eigen"``  the same XLA convolution rewritten (exactly) so that XLA:CPU runs it on
             its Eigen kernels rather than YNNPACK (``_lax.conv_off_ynn``).
``"subpixel"`` a strided transposed convolution as one stride-1 convolution with a
             phase kernel per output phase, then depth-to-space (``_subpixel``);
             plain convolutions as ``"eigen"``.
``"shift"``  a sum of shifted, per-output-channel-scaled copies of the input, one per
             (input channel of a group, kernel offset) (``_vjp.shift_conv``): elementwise
             work XLA fuses, for few taps per output (depthwise, first layers); also an
             input-gradient rule (the transposed conv the same way).
``"toeplitz"`` ungrouped convolutions only: one GEMM of input rows with a banded
             (Toeplitz) matrix built from the weight (``_vjp.toeplitz_conv``); also
             an input-gradient rule (its autodiff: GEMMs and slice adjoints).
``"im2col"`` patches gathered by hand + one (batched-over-groups) GEMM; transposed
             convolution by GEMM into columns + col2im scatter-add.
``"fft"``    the convolution theorem (stride-1 convolutions only).
``"auto"``   the default: picks a `Plan` (forward algorithm + gradient rules of
             ``_vjp``) per call; `select_plan` / `explain` say which.
``"F/DX/DW"`` an explicit plan, e.g. ``"eigen/lax/gemm"``: forward ``F``, input
             gradient rule ``DX`` and weight gradient rule ``DW`` (see ``_vjp``);
             ``"F/DX/DW/per_group"`` computes a grouped convolution group by group,
             each group an ungrouped convolution by that plan (`_vjp.per_group_conv`).

All of them compute the same function (checked against PyTorch in ``tests/``).

Decision table of ``"auto"`` (first matching row; ``cin/g`` = input channels per group;
a gradient rule named like the forward is left to autodiff, which computes the same
and keeps forward-mode differentiation available)::

    backend      call                          forward  input grad  weight grad
    gpu/tpu      any                           lax      autodiff    autodiff
    cpu          pointwise (kernel 1), not     im2col   autodiff    autodiff
                 depthwise or transposed
    cpu          depthwise (g > 1, cin/g = 1,  shift    autodiff if cout/g = 1, stride 1 and
                 not transposed), or few taps           prod(k) <= 9, else
                 (cin/g*prod(k) <= 32) at               shift if cout/g*prod(k) <= 160, else
                 stride 1, not transposed               toeplitz if banded fit, else lax
                                                                    depthwise: shift (autodiff for one tap
                                                                    or a scan carry over 2**25 elements);
                                                                    else eigen in 2D, lax in 1D, autodiff in 3D
    cpu          grouped, not depthwise, 1D/2D,  per group: the rows below for one group's
                 groups <= 32                    (ungrouped) convolution
    cpu          transposed, depthwise          shift    shift       gemm
                 (C_in/groups = 1)
    cpu          transposed, strided, phase     subpixel autodiff    autodiff     (2D, ungrouped)
                 kernels no longer than k                lax         gemm         (1D, 3D, grouped)
                 (ceil((d(k-1)+1)/s) <= k)
    cpu          1D / 3D                       lax      autodiff    gemm if grouped or transposed, else autodiff
    cpu          2D, banded fit (below)        toeplitz if the next row says lax with
                                               max(C_in, C_out) > 16 (YNNPACK's) and the
                                               band wastes <= 3x, else as the next row
                                                        toeplitz    eigen
    cpu          2D                            eigen if cin/g >= 16 and max(C_in, C_out) > 16, else lax
                                                        lax if strided or transposed, else eigen
                                                                    gemm if grouped or transposed with a stride, else eigen

"Banded fit": groups = 1, not transposed, stride and dilation 1, max(C_in, C_out)
<= 20 and the padded last spatial dim at most 6x the kernel's (the band's zeros
cost ``width/k`` times the convolution's multiplications). It needs the input
shape (``x_shape``); without it the next row applies. Its forward replaces
YNNPACK's at a waste of at most 3x (2026-12-02, quiet machine, forward ms at
batch 128, lax / eigen / toeplitz / im2col: convnet conv2 10->20 5x5 12x12 3.9
/ 3.4 / 2.9 / 1.9, at batch 256 7.2 / 6.1 / 4.5 / 7.3; 15->17 5x5 12x12 9.4 /
3.5 / 2.6 / 5.4; at waste 4-6.4 toeplitz loses: 10->20 3x3 12x12 1.8 / 2.0 /
2.7, 12->18 3x3 14x14 3.7 / 3.5 / 4.2, 4->20 5x5 p2 28x28 b64 3.7 / 11.4 /
14.6). ConvNet with it vs without, same run, settled timing (`benchmarks.common`):
forward 4.3 -> 3.0 ms at batch 128, 8.0 -> 8.4 at 256; Adam step -2.5% to +5.5% at
batch 128 (three runs), -3% to +10% at 256.

Why (XLA:CPU, jax 0.10.2, default flags; ``python -m benchmarks.ops --rules``;
ms per call, median of 3 interleaved rounds on a loaded 2-core AMD EPYC, so
only ratios within a row mean anything; BENCHMARKS.md has the latest run):

* XLA:CPU hands 2D convolutions without input dilation to YNNPACK, which is
  slow here: mnist conv2 (32->64 3x3, 26x26, batch 128) forward 214 (lax) vs
  80 (eigen), weight grad 276 vs 104. The "eigen" rewrite (input dilation 2
  on the last dim) computes the same products, summed in Eigen's order.
  YNNPACK only takes 2D, so 1D/3D stay on plain lax.
* With one input channel YNNPACK's forward is the fast one (mnist conv1 1->32:
  3.9 lax vs 39.6 eigen), hence the ``cin/g >= 16`` threshold: at 10 input
  channels lax still wins (convnet conv2 10->20 5x5 12x12 b128: 6.2 lax vs
  10.1 eigen), at 32 eigen does (mnist conv2 137 lax vs 102 eigen, same run).
  XLA:CPU itself keeps convolutions with at most 16 input and output channels
  off YNNPACK, so those stay plain lax.
* Few channels (the LeNet/ConvNet layers), batch 128, same run (loaded, ms)::

      layer                     forward             input grad          weight grad
                                lax  eigen toeplitz lax  eigen toeplitz lax   eigen gemm toeplitz
      lenet5 c1  1->6  5x5 28   13.7 42.4  6.2      34.3 64.0  6.2      11.3  4.7  13.5  7.3
      convnet c1 1->10 5x5 28   15.0 45.4  9.1      36.1 70.1  9.3      15.3  6.3  13.1  10.7
      lenet5 c2  6->16 5x5 12   3.4  7.1   4.5      13.1 14.5  4.2      5.5   2.9  8.7   6.2
      convnet c2 10->20 5x5 12  6.2  10.1  7.6      25.0 27.1  7.2      6.6   6.9  12.8  10.1
      mnist c1   1->32 3x3 28   9.2  25.4  21.1     20.0 25.2  22.8     24.2  10.3 26.6  19.8
      5x5 32->64 p2 32x32 b32   119  108   815      110  117   820      741   125  242   832

  XLA's convolution of a few channels (above all one input channel) runs at
  1-2 GFLOP/s; the banded GEMM does ``width/k`` times the multiplications
  (5.6x for 28/5, 2.4x for 12/5) at GEMM speed. It wins the input gradient
  up to 20 channels and width/k 5.6, and the forward with one input channel
  (``C_in*prod(k)`` 25; at 150 lax wins); it loses at width/k 9.3 (mnist
  conv1, 28/3) and with many channels (the 5x5 32->64 row). The thresholds
  (20 channels, 6x, 32) sit at the largest measured wins. Training step
  (Adam, batch 128, together with ``_vjp``'s sliced max pool; three loaded
  same-run measurements): lenet5 1.59-1.77x and convnet 1.71-2.0x faster than
  the previous table (cin/g >= 8, no toeplitz, reshape max pool), forward
  2.6-2.95x / 2.07x; mnist_net step unchanged (no banded fit), forward 1.19x
  (the pool).
* Depthwise: every XLA convolution is slow (forward 195 lax, 512 eigen;
  input grad 136 / 540; weight grad 93 / 130; gemm 800). "shift" does it as
  fused elementwise work: forward 30-40x faster than lax, same run. Autodiff's
  weight gradient is one per-channel reduction over N*H*W per tap, and XLA:CPU
  copies each strided slice out before reducing it; the "shift" weight
  gradient (`_vjp.shift_weight_grad`, a scan over the batch accumulating every
  tap's products) is 2-2.5x faster on every shape measured, quiet machine,
  fwd+bwd ms, autodiff weight grad -> shift: 3x3 64 32x32 b32 46 -> 20; 3x3 s2
  m2 32->64 56x56 b32 45.5 -> 37.6; 5x5 96 28x28 b32 157 -> 59; 3x3 32
  112x112 b16 125 -> 62; 7x7 128 56x56 b8 (79 MB carry) 306 -> 139; 1D k7 64
  L512 b32 13.8 -> 5.9. A "shift" input gradient beats autodiff's for strides,
  multipliers and kernels past 3x3 (3x3 s2 64 32x32: 13.8 -> 9.9; 7x7 96
  28x28: 138 -> 103) but not for 3x3 at multiplier 1 (19.4 vs 23.7).
* Few taps per output, quiet machine, ms (forward / input grad; batch 128
  unless noted; "shift" fwd and dx are the custom rules)::

      layer                     taps  adj.  shift  lax   toeplitz im2col  | dx: shift lax   toeplitz
      lenet5 c1  1->6  5x5 28    25   150   0.9    7.5   3.9      4.2     |     3.7  21.7   3.8
      convnet c1 1->10 5x5 28    25   250   2.6    8.1   5.3      4.1     |     23   18.8   5.6
      mnist c1   1->32 3x3 28     9   288   1.7    7.1   13.5     4.6     |     28.8 12.8   16.8
      RGB 3->32 3x3 p1 32        27   288   8.0    22.9  57.5     12.6    |     105  22.2   45.7
      4->32 3x3 p1 32 b64        36         7.4    10.2           8.7
      6->16 3x3 12               54         5.1    2.5            1.8
      lenet5 c2  6->16 5x5 12   150         2.6    1.8   3.5      3.5
      3->32 3x3 s2 p1 64 b32     27         6.0    4.8            3.8
      1D 1->16 k9 L1024 b32       9   144   0.45   1.3            0.9     |     1.9  2.4
      3D 1->8 3x3x3 16 b8        27   216   1.1    25             1.7     |     1.3  21.7

  Hence the thresholds: shift forward up to 32 taps at stride 1 (strided
  slices do not vectorise: the s2 row), its input-gradient rule up to 160
  adjoint taps (the jump from 150 to 250 is measured). Autodiff of the shift
  forward for the input gradient scatters each tap back separately: lenet5 c1
  134 ms. Weight gradient of these layers: eigen 2.6-11.7 ms, autodiff of the
  shift 3.4-34, gemm 9.5-69 (2D). In 1D, XLA's weight-gradient convolution
  beats autodiff of the shift sum (one strided reduction per tap) on every
  shape measured (2026-12-02, ms, autodiff -> lax, NCL / channels-last):
  1->16 k9 L1024 b32 1.9 -> 1.1 / 3.1 -> 1.0; 2->32 k11 L4000 b16 15.8 -> 7.3 /
  16.4 -> 4.3; 4->64 k7 L256 b32 4.2 -> 1.7 / 5.7 -> 1.1; 1->32 k31 L16000 b8
  46 -> 11 / 55 -> 7.0; 1->256 k25 L2048 b32 127 -> 76 / 186 -> 58 (gemm:
  1.5-225, never the best). In 3D no rule wins throughout: gemm beats autodiff
  with 4-16 outputs (1->16 3x3x3 32^3 b4 15.6 -> 14.0, 2->16 3x3x3 24^3 b2
  18.3 -> 9.8, 1->8 1x5x5 16x64x64 b2 13.4 -> 7.2) and loses with 24-64 (1->32
  3x3x3 32^3 b4 44 -> 54, 1->64 2x2x2 40^3 b2 22 -> 75, 3->24 1x3x3 8.0 -> 10.9),
  lax loses to autodiff by up to 2.5x; 3D keeps autodiff.
  The shift sum is computed inside a `lax.cond` so that its output is
  materialised: fused into a following max pool's slices it was recomputed
  per slice (lenet5 c1 + relu + pool: 4.3 -> 1.1 ms). Models, same run vs
  the toeplitz plan before: lenet5 forward 0.68x -> 1.31x PyTorch, convnet
  0.71x -> 1.03x; training step lenet5 1.09-1.19x -> 1.34x, convnet
  0.97-1.07x -> 1.24x.
* Pointwise (1x1) convs, quiet machine, ms forward / forward+backward (autodiff),
  PyTorch in the same run; "im2col" is one GEMM per sample with the weight
  broadcast over the batch (no patches, no transposes)::

      conv                          im2col       previous auto   lax          PyTorch
      64->128 32x32 b32             10.5 / 35.2  17.0 / 40.1     29.6 / 756   22.8 / 49.3
      256->64 16x16 b32             11.9 / 12.4  7.2 / 17.4      14.0 / 178   5.7 / 17.8
      64->128 s2 32x32 b32          5.9 / 8.8    5.9 / 16.9      10.4 / 57.8  4.3 / 15.5
      1D 64->128 L256 b32           5.1 / 7.0    4.0 / 8.8       4.2 / 9.4    3.1 / 9.9
      64->128 g4 32x32 b32          6.0 / 8.7    7.4 / 249       29.2 / 248   17.6 / 36.6

  Channels-last and ungrouped, "im2col" is one (N*L, C) @ (C, O) GEMM
  (2026-12-02, batch 16, forward ms before -> after, eigen alongside: 64->8 s2
  56x56 7.6 -> 1.8 (1.9-3.5); 64->128 s2 56x56 17.2 -> 4.9 (2.9-3.1); 64->128
  32x32 8.7 -> 3.0 (3.7-4.0); 256->64 14x14 4.3 -> 1.5 (1.5-2.3); its fwd+bwd
  beats eigen's on all six shapes measured, 3.0-10.7 vs 4.0-21.7 ms).

* Grouped convs, group by group vs as one grouped convolution (the plan of
  the rows below), quiet machine, speed over PyTorch, forward / fwd+bwd
  (``python -m benchmarks.ops --only g4 --impls auto,eigen/autodiff/gemm,...``)::

      conv                                  per group       joint
      3x3 g4 64->64 32x32 b32               0.57x / 0.74x   0.37x / 0.45x (eigen/autodiff/gemm)
      transposed 4x4 s2 g4 64->64 16x16     0.64x / 0.84x   0.36x / 0.57x (eigen/lax/gemm)
      conv1d k5 g4 64->64 L256 b32          0.45x / 0.98x   0.50x / 0.73x (lax/autodiff/gemm)

  and a sweep, ms forward / fwd+bwd, same run, loaded 2-core machine::

      conv                                  per group       joint          PyTorch
      3x3 g4 64->64 32x32 b32               37.8 / 134      66.6 / 219     48.0 / 139
      3x3 g2 64->64 32x32 b32               84.3 / 252      87.3 / 350
      3x3 g8 64->64 32x32 b32               47.3 / 166      123 / 387
      3x3 g16 64->64 32x32 b32              125 / 428       181 / 881
      3x3 g32 s2 128->128 32x32 b16         38.9 / 69       29.9 / 332
      3x3 g4 s2 128->128 32x32 b32          51.8 / 140      80.8 / 476
      conv1d k5 g4 64->64 L256 b32          5.0 / 16.0      11.3 / 28.3
      transposed 4x4 s2 g4 64->64 16x16     46.4 / 97       96.7 / 201
      transposed 4x4 s2 g2 64->32 16x16     36.7 / 94       96.1 / 131
      3D 3x3x3 g2 16->16 12^3 b4            32.2 / 121      24.1 / 60

  XLA:CPU's grouped convolutions (above all the batch-grouped weight-gradient
  convolution) run far below its ungrouped ones; one group at a time each
  piece gets the ungrouped plan. 3D loses (its ungrouped weight gradient is
  XLA's), so 3D stays joint; depthwise convs have "shift".
* Strided transposed convs (``_subpixel``): XLA's form multiplies the ``s**nd - 1``
  zeros it inserts per input; the sub-pixel form is one dense stride-1 convolution
  (2026-12-02, quiet machine, ms, same run; forward, then the gradients of
  ``sum(y * dy)``, PyTorch alongside)::

      layer (batch)                        eigen  subpixel  PyTorch | grads: eigen/lax/gemm  subpixel autodiff  PyTorch
      4x4 s2 64->32 16x16 (32)             16.7   10.3      8.8     |       30.5             19.6               28.0
      3x3 s2 p1 op1 64->32 16x16 (32)      10.1   5.2-7.3   4.8     |       17.7             11.3               10.1
      4x4 s2 g4 64->64 16x16 (32), per grp 28.0   7.9       10.9    |       35.3             13.5               22.0
      2x2 s2 128->64 16x16 (16)            5.1    3.7       4.6     |       16.1             9.4                11.6
      1D k4 s2 64->64 L128 (32)            3.5    1.9       2.4     |       5.0 (subpixel/lax/gemm 3.9; autodiff 128)
      3D k4 s2 32->16 8^3 (4)              318    3.8       2.0     |       9.1 (subpixel/lax/gemm 9.0; autodiff 65)

  In 2D the sub-pixel form's autodiff gradients are eigen-form convolutions and
  beat the custom rules (and keep forward mode); 1D/3D weight gradients by
  autodiff are XLA's slow ones, so there the GEMM rule stays. Grouped convs
  (joint: depthwise, > 32 groups) keep the custom rules: autodiff of a
  depthwise sub-pixel conv took 1.5 s. Depthwise transposed convs run as
  "shift" (the transposed shift sum; its rules: a shift conv of ``dy``, GEMM
  weight gradient), same run, forward / gradients ms: 4x4 s2 64 16x16 b32
  lax 53 / 50, subpixel 54, shift 10.8 / 21.2, PyTorch 2.5 / 16.2; 3x3 s2
  37.8 / 30.6 -> 2.4 / 9.6 (PyTorch 1.9 / 6.2); multiplier 2, 4x4 s2 32
  32x32 b16 47.7 / 198 -> 13.6 / 83.9 (PyTorch 24 / 58).
* Input gradient of a strided conv: XLA's transpose already dilates the
  cotangent (so YNNPACK declines it) and the eigen form would dilate it 2x
  more: 3x3 s2 64->128: 47 (lax) vs 155 (eigen). Stride 1: eigen wins or ties
  (mnist conv2 94 vs 104, 1x1 42 vs 67, grouped 80 vs 150, 5x5 110 vs 98).
* Weight gradient of grouped and transposed convs: XLA's (batch-grouped)
  weight-gradient convolution is pathological: 3x3 g4 64->64 2685 (lax) /
  2910 (eigen) vs 136 (gemm); transposed 4x4 s2 64->32 583 vs 43 (gemm);
  conv1d k5 g4 20.4 vs 8.0 (a later, less loaded run). A stride-1 transposed
  conv's weight gradient is an ordinary convolution's (no inserted zeros) and
  eigen's beats the GEMMs on every shape measured (2026-12-02, ms, gemm ->
  eigen, batch 16, 3x3 p1 unless noted): 1->64 56x56 98-100 -> 7.4-9.0, 3->32
  32x32 7.5-10 -> 1.4-1.9, 8->32 32x32 5.5-9.5 -> 2.1-3.1, 16->32 32x32 8.8-10.5
  -> 4.4-6.7, 64->64 16x16 7.3-9.3 -> 3.6-5.6, 32->8 5x5 p2 16x16 3.8-4.2 ->
  2.2-2.5, 4->16 5x5 p2 28x28 3.8-5.5 -> 1.2-2.0; both gradients of the plan
  (without the forward) 107.5 -> 26.5 for the first, 1.1-2.1x for the others.
  Elsewhere eigen's weight gradient beats the per-offset GEMMs (mnist conv2
  104 vs 260, 1x1 18 vs 32, 5x5 101 vs 335), whose long-contraction
  (O x C) dots run far below GEMM speed.
* Open: eigen vs lax for the stride-1 gradients is shape dependent. mnist
  conv2 weight grad: eigen 58 vs lax 135 (and 104 vs 276 earlier); but 5x5
  p2 32x32: lax 48 vs eigen 75 (ties, 95 vs 101, in the earlier run), input
  grads within noise. A finer rule needs quieter measurements.
* GPU/TPU: not measured in this session (no device); cuDNN serves lax well.

Compiling a training step with ``jax.jit(..., compiler_options={
"xla_cpu_experimental_ynn_fusion_type": ""})`` also takes convolutions off
YNNPACK (for that jit only); the plans above make that unnecessary for convs.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import jax

from jaxconv.functional import _args, _subpixel
from jaxconv.functional._spec import ConvSpec
from jaxconv.functional._vjp import (
    INPUT_GRAD_RULES,
    WEIGHT_GRAD_RULES,
    Plan,
    adjoint_spec,
    check_toeplitz,
    conv_with_plan,
    group_spec,
)

IMPLS = ("auto", "lax", "eigen", "subpixel", "shift", "toeplitz", "im2col", "fft")
FORWARDS = ("lax", "eigen", "subpixel", "shift", "toeplitz", "im2col", "fft")
MIN_EIGEN_CHANNELS = 16  # input channels per group from which "eigen" beats YNNPACK's forward
YNN_MIN_CHANNELS = 16    # XLA:CPU leaves 2D convs with max(C_in, C_out) <= 16 on Eigen anyway
TOEPLITZ_MAX_CHANNELS = 20  # "toeplitz" input grad only for max(C_in, C_out) up to this
TOEPLITZ_MAX_WASTE = 6      # ... and a padded last dim at most this many times the kernel's
TOEPLITZ_FORWARD_MAX_WASTE = 3  # "toeplitz" forward (instead of YNNPACK's) up to this band waste
SHIFT_MAX_TAPS = 32          # "shift" forward (stride 1) for cin/g * prod(kernel) up to this
SHIFT_MAX_ADJOINT_TAPS = 160  # "shift" input grad for cout/g * prod(kernel) up to this
PER_GROUP_MAX_GROUPS = 32     # grouped 1D/2D convs run group by group up to this many groups
DEPTHWISE_AUTODIFF_DX_TAPS = 9  # depthwise, multiplier 1, stride 1: autodiff input grad up to this many taps
SHIFT_DW_MAX_CARRY = 2**25    # "shift" weight grad of depthwise convs while its scan carry has at most this many elements


def parse_plan(impl: str) -> Plan | None:
    """The `Plan` an explicit ``"F/DX/DW"`` or ``"F/DX/DW/per_group"`` impl names
    (``None`` for the plain names)."""
    parts = impl.split("/")
    if len(parts) == 4:
        if parts[3] != "per_group":
            raise ValueError(f"the fourth part can only be 'per_group', got {parts[3]!r}")
        return Plan(*parts[:3], per_group=True)
    if len(parts) != 3:
        return None
    return Plan(*parts)


def check_impl(impl: str) -> str:
    if not isinstance(impl, str):
        raise TypeError(f"impl must be a str such as 'auto' or 'lax', got {type(impl).__name__}")
    if impl in IMPLS:
        return impl
    try:
        if parse_plan(impl) is not None:
            return impl
    except ValueError as e:
        raise ValueError(f"impl {impl!r}: {e}") from None
    raise ValueError(
        f"impl must be one of {IMPLS} or 'forward/input_grad/weight_grad' (optionally "
        f"followed by '/per_group') with forward in {FORWARDS}, input_grad in "
        f"{INPUT_GRAD_RULES}, weight_grad in {WEIGHT_GRAD_RULES}; got {impl!r}"
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
    return _cpu_plan(spec, w_shape, x_shape, channels_last)


def _cpu_plan(spec: ConvSpec, w_shape: Sequence[int] | None,
              x_shape: Sequence[int] | None = None, channels_last: bool = False) -> Plan:
    """The CPU rows of the decision table in the module docstring."""
    if w_shape is None:
        cin_per_group, channels = 2 * MIN_EIGEN_CHANNELS, 2 * YNN_MIN_CHANNELS
    else:
        a, b = w_shape[0], w_shape[1]
        cin_per_group = a // spec.groups if spec.transposed else b
        channels = max(a, b * spec.groups)
    grouped = spec.groups > 1
    if w_shape is not None and not spec.transposed and math.prod(w_shape[2:]) == 1 and cin_per_group > 1:
        return Plan("im2col")  # pointwise: a batched GEMM (`_im2col.conv`), autodiff GEMMs too
    shift_plan = _shift_plan(spec, w_shape, x_shape, channels_last, cin_per_group)
    if shift_plan is not None:
        return shift_plan
    if _per_group_pays(spec, w_shape, cin_per_group):
        one = group_spec(spec)
        w_one = (w_shape[0] // spec.groups, *w_shape[1:])
        x_one = None
        if x_shape is not None:
            axis = _args.channel_axis(True, channels_last, len(x_shape))
            x_one = tuple(n // spec.groups if i == axis else n for i, n in enumerate(x_shape))
        return dataclasses.replace(_cpu_plan(one, w_one, x_one, channels_last), per_group=True)
    if spec.transposed and w_shape is not None and grouped and cin_per_group == 1:
        return Plan("shift", "shift", "gemm")  # depthwise transposed: every XLA form is slow
    if _subpixel_fits(spec, w_shape):
        if spec.nd == 2 and spec.groups == 1:
            return Plan("subpixel")  # its autodiff runs eigen-form stride-1 convolutions
        return Plan("subpixel", "lax", "gemm")
    if spec.nd != 2:                               # no YNNPACK outside 2D
        return Plan("lax", "autodiff", "gemm") if spec.transposed or grouped else Plan("lax")
    ynn = channels > YNN_MIN_CHANNELS
    forward = "eigen" if ynn and cin_per_group >= MIN_EIGEN_CHANNELS else "lax"
    strided = any(s > 1 for s in spec.stride)
    dx = "lax" if strided or spec.transposed else "eigen"
    # Stride-1 transposed: an ordinary weight-gradient convolution (module docstring,
    # "Weight gradient of grouped and transposed convs").
    dw = "gemm" if grouped or (spec.transposed and strided) else "eigen"
    if _toeplitz_fits(spec, w_shape, x_shape, channels_last):
        dx = "toeplitz"
        if ynn and forward == "lax" and _toeplitz_fits(spec, w_shape, x_shape, channels_last,
                                                      TOEPLITZ_FORWARD_MAX_WASTE):
            forward = "toeplitz"
    if not spec.transposed:  # a rule named after the forward is its autodiff: keep jvp working
        dx, dw = ("autodiff" if r == forward else r for r in (dx, dw))
    return Plan(forward, dx, dw)


def _shift_plan(spec: ConvSpec, w_shape: Sequence[int] | None, x_shape: Sequence[int] | None,
                channels_last: bool, cin_per_group: int) -> Plan | None:
    """The plan of the "shift" rows of the decision table (None: another row applies)."""
    if w_shape is None or spec.transposed:
        return None
    taps = math.prod(w_shape[2:])
    depthwise = cin_per_group == 1 and spec.groups > 1
    strided = any(s > 1 for s in spec.stride)
    if not depthwise and (cin_per_group * taps > SHIFT_MAX_TAPS or strided):
        return None
    m = w_shape[0] // spec.groups
    if depthwise and m == 1 and not strided and taps <= DEPTHWISE_AUTODIFF_DX_TAPS:
        dx = "autodiff"
    elif m * taps <= SHIFT_MAX_ADJOINT_TAPS:
        dx = "shift"
    elif _toeplitz_fits(spec, w_shape, x_shape, channels_last):
        dx = "toeplitz"
    else:
        dx = "lax"
    if depthwise:
        fits = _scan_carry(spec, w_shape, x_shape, channels_last) <= SHIFT_DW_MAX_CARRY
        dw = "shift" if taps > 1 and fits else "autodiff"  # one tap: a plain product and sum
    else:
        dw = {1: "lax", 2: "eigen"}.get(spec.nd, "autodiff")
    return Plan("shift", dx, dw)


def _scan_carry(spec: ConvSpec, w_shape: Sequence[int], x_shape: Sequence[int] | None,
                channels_last: bool) -> int:
    """Elements in `_vjp.shift_weight_grad`'s scan carry, one output-sized sum per
    (input channel of a group, tap); 0 without ``x_shape``."""
    if x_shape is None:
        return 0
    spatial = x_shape[1:-1] if channels_last else x_shape[2:]
    return w_shape[1] * math.prod(w_shape[2:]) * w_shape[0] * math.prod(spec.out_spatial(spatial, w_shape[2:]))


def _subpixel_fits(spec: ConvSpec, w_shape: Sequence[int] | None) -> bool:
    """A strided transposed convolution whose phase kernels are no longer than its kernel
    (``ceil((d*(k-1) + 1) / s) <= k`` per dim), so that `_subpixel` multiplies no more
    than XLA's input-dilated form does (``s**nd`` times fewer at ``d = 1``)."""
    if w_shape is None or not spec.transposed or all(s == 1 for s in spec.stride):
        return False
    return all(j <= k for j, k in zip(_subpixel.phase_taps(spec, w_shape[2:]), w_shape[2:]))


def _per_group_pays(spec: ConvSpec, w_shape: Sequence[int] | None, cin_per_group: int) -> bool:
    """Grouped, not depthwise, 1D/2D, at most PER_GROUP_MAX_GROUPS groups (the graph grows with them)."""
    if w_shape is None or spec.groups == 1 or spec.nd == 3 or spec.groups > PER_GROUP_MAX_GROUPS:
        return False
    out_per_group = w_shape[1] if spec.transposed else w_shape[0] // spec.groups
    return cin_per_group > 1 and out_per_group > 1


def _toeplitz_fits(spec: ConvSpec, w_shape: Sequence[int] | None, x_shape: Sequence[int] | None,
                   channels_last: bool, max_waste: int = TOEPLITZ_MAX_WASTE) -> bool:
    """Few channels, ungrouped, stride/dilation 1, and a last dim short against the kernel
    (at most ``max_waste`` times its width)."""
    if (w_shape is None or x_shape is None or spec.transposed or spec.groups != 1
            or any(s != 1 for s in spec.stride) or any(d != 1 for d in spec.dilation)):
        return False
    if max(w_shape[0], w_shape[1]) > TOEPLITZ_MAX_CHANNELS:
        return False
    width = x_shape[-2] if channels_last else x_shape[-1]
    lo, hi = spec.padding[-1]
    return width + lo + hi <= max_waste * w_shape[-1]


def explain(impl: str, spec: ConvSpec, x_shape: Sequence[int] | None = None,
            w_shape: Sequence[int] | None = None, channels_last: bool = False,
            backend: str | None = None, op: str = "conv") -> dict[str, str]:
    """``{"forward": ..., "input_grad": ..., "weight_grad": ..., "groups": "joint" | "per_group"}``
    for a call, as `select_plan`; raises the call's ValueError where the plan cannot compute it."""
    plan = select_plan(impl, spec, x_shape, w_shape, channels_last, backend)
    check_plan(plan, spec, op)
    return {"forward": plan.forward, "input_grad": plan.input_grad, "weight_grad": plan.weight_grad,
            "groups": "per_group" if plan.per_group else "joint"}


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
        check_plan(plan, spec, op)
        return conv_with_plan(plan)(x, w, spec, channels_last)

    check_explicit(impl, spec, op)
    return run


def check_explicit(impl: str, spec: ConvSpec, op: str) -> None:
    """Raises ValueError where an explicit ``impl`` (not ``"auto"``) cannot compute ``spec``."""
    if impl != "auto":
        check_plan(select_plan(impl, spec), spec, op)


def check_plan(plan: Plan, spec: ConvSpec, op: str) -> None:
    """Raises ValueError where ``plan``'s algorithms cannot compute ``spec`` (e.g. fft with a
    stride, toeplitz on a grouped or transposed conv)."""
    one = group_spec(spec) if plan.per_group else spec
    _check_supported(plan.forward, one, op)
    if plan.input_grad == "toeplitz":
        check_toeplitz(adjoint_spec(one) if one.transposed else one, op)


def _check_supported(forward: str, spec: ConvSpec, op: str) -> None:
    import importlib

    if forward == "toeplitz":
        check_toeplitz(spec, op)
        return
    if forward in ("eigen", "shift", "subpixel"):
        return
    module = importlib.import_module(f"jaxconv.functional._{forward}")
    check = getattr(module, "check_supported", None)
    if check is not None:
        check(spec, op)
