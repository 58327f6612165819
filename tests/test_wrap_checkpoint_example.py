"""examples/wrap_checkpoint.py at smoke size: the wrapped checkpoint is exact at the walls and the FNO inside."""

import torch

from boon_ext import boundary_error


def test_wrapped_checkpoint_is_exact_and_keeps_the_interior(load_example, tmp_path, capsys):
    pred, y, values, boundary = load_example("wrap_checkpoint").main(["--quick", "--out", str(tmp_path)])
    fno, wrapped = pred["FNO"], pred["FNO wrapped by BOON"]
    assert (tmp_path / "fno_state_dict.pt").is_file()  # neuralop's checkpoint, written then wrapped
    assert boundary_error(wrapped, boundary, values, relative=True) < 1e-5
    assert boundary_error(fno, boundary, values, relative=True) > 1e-3  # the plain FNO misses them
    assert torch.equal(wrapped[..., 1:-1], fno[..., 1:-1])
    assert "| FNO wrapped by BOON |" in capsys.readouterr().out
