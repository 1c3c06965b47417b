"""parallel="pmap" and "sharded" reproduce single-device training (2 simulated CPU devices, subprocess)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from train_helpers import REPO

RTOL = 1e-5


@pytest.fixture(scope="module")
def results(small_mnist, tmp_path_factory):
    script = Path(__file__).with_name("multidevice_check.py")
    workdir = tmp_path_factory.mktemp("parallel")
    out = subprocess.run(
        [sys.executable, str(script), str(small_mnist), str(workdir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-5000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("mode", ["pmap", "sharded", "pmap/mb2", "sharded/mb2"])
def test_runner_with_dropout_matches_single_device(results, mode):
    single, multi = results["runner"]["none"], results["runner"][mode]
    np.testing.assert_allclose(multi["losses"], single["losses"], rtol=RTOL)
    assert multi["step"] == single["step"] == len(single["losses"])
    for a, b in zip(multi["params"], single["params"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert multi["eval_count"] == single["eval_count"] == 8
    np.testing.assert_allclose(multi["eval_loss_sum"], single["eval_loss_sum"], rtol=RTOL)


@pytest.mark.parametrize("mode", ["pmap", "sharded"])
def test_train_and_evaluate_matches_single_device(results, mode):
    single, multi = results["end_to_end"]["none"], results["end_to_end"][mode]
    assert multi["devices"] == 2 and single["devices"] == 1
    assert len(multi["losses"]) == len(single["losses"]) == 4
    np.testing.assert_allclose(multi["losses"], single["losses"], rtol=RTOL)
    assert multi["test_accuracy"] == pytest.approx(single["test_accuracy"], abs=2e-3)
    assert multi["eval_mode_accuracy"] == pytest.approx(multi["test_accuracy"], abs=1e-9)


def test_indivisible_batch_is_a_clear_error(results):
    message = results["divisibility_error"]
    assert "batch_size=3" in message and "2 local devices" in message
