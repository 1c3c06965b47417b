import subprocess
import sys

import jax
import numpy as np
import pytest
import torch

from jaxconv.data import pipeline

N, BATCH = 103, 10


def arrays(n=N):
    labels = np.arange(n, dtype=np.int32)  # a label identifies its example
    images = np.broadcast_to(labels[:, None, None, None], (n, 2, 2, 1)).astype(np.uint8)
    return images, labels


def epoch(key, epoch_index=0, **kwargs):
    images, labels = arrays()
    return list(
        pipeline.train_batches(images, labels, batch_size=BATCH, key=key, epoch=epoch_index, **kwargs)
    )


def order(batches):
    return [int(label) for _, y in batches for label in y]


@pytest.mark.parametrize("mean,std,channels", [(0.1307, 0.3081, 1), ((0.5, 0.4, 0.3), (0.2, 0.25, 0.3), 3)])
def test_normalize_matches_torch_to_tensor_normalize(mean, std, channels):
    images = np.random.default_rng(0).integers(0, 256, (4, 5, 6, channels), dtype=np.uint8)
    x = pipeline.normalize(images, mean, std)
    # torchvision: ToTensor() permutes HWC->CHW and divides by 255; Normalize() subtracts mean, divides by std.
    t = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255)
    t = t.sub(torch.tensor(mean, dtype=torch.float32).reshape(-1, 1, 1))
    t = t.div(torch.tensor(std, dtype=torch.float32).reshape(-1, 1, 1))
    assert x.shape == (4, channels, 5, 6) and x.dtype == np.float32
    np.testing.assert_array_equal(x, t.numpy())


def test_normalize_rejects_bad_arguments():
    images = np.zeros((1, 2, 2, 3), np.uint8)
    with pytest.raises(ValueError, match="mean has 2 values, images have 3 channels"):
        pipeline.normalize(images, (0.1, 0.2), 1.0)
    with pytest.raises(ValueError, match="std has a zero"):
        pipeline.normalize(images, 0.0, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        pipeline.normalize(images[0], 0.0, 1.0)


def test_steps_per_epoch():
    assert pipeline.steps_per_epoch(103, 10) == 10
    assert pipeline.steps_per_epoch(103, 10, drop_remainder=False) == 11
    assert pipeline.steps_per_epoch(100, 10, drop_remainder=False) == 10


def test_same_key_same_batches_and_other_keys_differ():
    key = jax.random.key(42)
    first, again = epoch(key), epoch(key)
    for (x1, y1), (x2, y2) in zip(first, again, strict=True):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    np.testing.assert_array_equal(first[0][0][:, 0, 0, 0], first[0][1])  # images travel with their labels
    assert order(epoch(jax.random.key(43))) != order(first)
    assert order(epoch(key, epoch_index=1)) != order(first)
    assert order(epoch(jax.random.PRNGKey(42))) == order(first)  # raw and typed keys agree


def test_order_is_the_same_in_another_process():
    code = (
        "import jax; from jaxconv.data import pipeline; "
        "print(pipeline.epoch_permutation(jax.random.key(7), 3, 50).tolist())"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == str(pipeline.epoch_permutation(jax.random.key(7), 3, 50).tolist())


def test_drop_remainder():
    batches = epoch(jax.random.key(0))
    assert len(batches) == N // BATCH and all(len(y) == BATCH for _, y in batches)
    assert len(set(order(batches))) == N // BATCH * BATCH
    batches = epoch(jax.random.key(0), drop_remainder=False)
    assert [len(y) for _, y in batches] == [BATCH] * (N // BATCH) + [N % BATCH]
    assert sorted(order(batches)) == list(range(N))


@pytest.mark.parametrize("drop_remainder", [True, False])
def test_resume_mid_epoch_gives_the_remaining_batches(drop_remainder):
    key = jax.random.key(3)
    full = epoch(key, epoch_index=2, drop_remainder=drop_remainder)
    for start in (0, 1, 4, len(full)):
        resumed = epoch(key, epoch_index=2, start_step=start, drop_remainder=drop_remainder)
        assert order(resumed) == order(full[start:])
    with pytest.raises(ValueError, match="start_step 11 is outside an epoch of 10 steps"):
        epoch(key, start_step=11)


def test_batch_larger_than_dataset():
    with pytest.raises(ValueError, match="larger than the 103 examples"):
        next(pipeline.train_batches(*arrays(), batch_size=200, key=jax.random.key(0), epoch=0))


@pytest.mark.parametrize("n", [1, 40, 103])
def test_eval_batches_cover_every_example_once(n):
    images, labels = arrays(n)
    batches = list(pipeline.eval_batches(images, labels, batch_size=BATCH))
    assert len(batches) == -(-n // BATCH)
    assert all(
        x.shape == (BATCH, 2, 2, 1) and y.shape == (BATCH,) and m.shape == (BATCH,) for x, y, m in batches
    )
    seen = np.concatenate([y[m] for _, y, m in batches])
    np.testing.assert_array_equal(seen, labels)
    assert sum(int(m.sum()) for _, _, m in batches) == n
    x, y, m = batches[-1]
    assert not x[~m].any() and not y[~m].any()
