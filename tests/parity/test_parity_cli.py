"""``python -m jaxconv.parity ops``: every family and conv impl in its registry runs and matches PyTorch."""

import pytest

pytest.importorskip("torch")

from jaxconv.parity import registry  # noqa: E402
from jaxconv.parity.__main__ import main  # noqa: E402

RUNS = [(family, impl) for family, (_, impls) in registry.FAMILIES.items() for impl in impls]


@pytest.mark.parametrize("family,impl", RUNS, ids=[f"{f}-{i}" for f, i in RUNS])
def test_ops_cli_one_case_per_op(family, impl, capsys):
    argv = ["ops", "--n", "1", "--seed", "3", "--family", family] + ([] if impl == "-" else ["--impl", impl])
    status = main(argv)
    out = capsys.readouterr().out
    assert status == 0, out
    rows = [line.split() for line in out.splitlines() if line.split()[-1:] == ["ok"]]
    assert rows and all(row[1] == impl and row[2] == "1" for row in rows), out
    if family == "conv":  # toeplitz computes ungrouped convolutions only, so no transposed ones
        expected = {f"conv{d}d" for d in (1, 2, 3)} | (set() if impl == "toeplitz" else
                                                      {f"conv_transpose{d}d" for d in (1, 2, 3)})
        assert {row[0] for row in rows} == expected


def test_unknown_impl_is_rejected():
    with pytest.raises(ValueError, match="has impls"):
        registry.generate("conv", 0, 1, "nope")
