"""Messages for the PyTorch objects people have: a whole module pickled with torch.save(module)
("save its state_dict()"), and a model that wraps an nn.LSTM ("pass .lstm")."""
import pytest

import lstmcheck as lc
from lstmcheck.errors import FileFormatError, OptionError

torch = pytest.importorskip("torch")


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 4)
        self.head = torch.nn.Linear(4, 1)


class TwoRnns(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = torch.nn.GRU(3, 4)
        self.dec = torch.nn.RNN(4, 4)


def test_a_wrapper_is_told_which_attribute_to_pass():
    with pytest.raises(OptionError, match=r"got Net; it holds an LSTM as \.lstm: pass \.lstm\."):
        lc.audit(Net())
    with pytest.raises(OptionError, match=r"a GRU as \.enc, an RNN as \.dec: pass one of them"):
        lc.layouts.from_torch(TwoRnns())
    assert lc.audit(Net().lstm, fd=False).passed       # and the hint works


def test_a_pickled_whole_module_says_save_its_state_dict(tmp_path):
    from lstmcheck import io
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.LSTM(3, 4), path)
    with pytest.raises(FileFormatError, match=r"whole pickled torch\.nn\.LSTM object .*save its "
                                              r"state_dict\(\) instead"):
        io.load_file(str(path))
    good = tmp_path / "sd.pt"
    torch.save(torch.nn.LSTM(3, 4).state_dict(), good)
    model, _ = io.load_file(str(good))
    assert model.kind == "lstm"


def test_cli_pickled_module_is_one_line_exit_2(tmp_path):
    from click.testing import CliRunner
    from lstmcheck.cli import cli
    path = tmp_path / "whole.pt"
    torch.save(torch.nn.GRU(3, 4), path)
    r = CliRunner().invoke(cli, ["probe", "--weights", str(path), "--seq-len", "5"])
    assert r.exit_code == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("probing")]
    assert len(lines) == 1 and "save its state_dict()" in lines[0], r.stderr
