"""What a run shows (rsb.run.console): the progress line's format, which steps it reads the loss at, the bar on a
terminal kept out of train.log, and train.log as a copy of the terminal that a refused run adds its error to."""
from __future__ import annotations

import io
import re
import sys

import pytest
import torch
from tests._tiny import TINY_OVERRIDES, tiny_data

from rsb.errors import UserError
from rsb.run import console
from rsb.run.console import Progress, TerminalCopy
from rsb.train import main

SMALL = [*TINY_OVERRIDES, "model.name=resnet10t", "run.log_every=2"]  # 6 steps per epoch: logged at 2, 4, 6
LINE = re.compile(r"^epoch 2/3 step (\d+)/7 loss 0\.5000 lr 0\.001235 \d+\.\d img/s$")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_data(tmp_path_factory.mktemp("tiny") / "sample")


def _train(args) -> int:
    torch.set_num_threads(1)
    return main(args)


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_line_in_logs_every_nth_step_and_the_last(capsys):
    p = Progress(True, total_steps=7, first_step=0, every=3, epoch=1, epochs=3)
    for step in range(1, 8):
        p.step(step, lambda: 0.5, 1.23456e-3, step * 4)
    p.close()
    lines = capsys.readouterr().out.splitlines()
    assert [LINE.match(line).group(1) for line in lines] == ["3", "6", "7"]


def test_on_a_terminal_the_bar_stays_out_of_train_log_and_the_line_goes_in(tmp_path, monkeypatch):
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    shown = sys.stdout
    with TerminalCopy(tmp_path / "train.log", enabled=True):
        p = Progress(True, total_steps=7, first_step=0, every=3, epoch=1, epochs=3)
        for step in range(1, 8):
            p.step(step, lambda: 0.5, 1.23456e-3, step * 4)
        p.close()
    log = (tmp_path / "train.log").read_text().splitlines()
    assert [LINE.match(line).group(1) for line in log] == ["3", "6", "7"]  # the plain lines, nothing else
    assert "epoch 2/3" in terminal.getvalue()  # the bar, drawn on the terminal itself
    assert shown.getvalue() == ""  # not printed as lines as well


def test_progress_hands_every_nth_step_to_the_trackers_even_when_quiet():
    got, computed = [], []

    def loss():
        computed.append(1)
        return 0.5

    p = Progress(False, total_steps=7, first_step=0, every=3, epoch=0, epochs=1,
                 on_log=lambda step, v: got.append((step, v["loss"], v["lr"])))
    for step in range(1, 8):
        p.step(step, loss, 0.1, step * 4)
    assert got == [(3, 0.5, 0.1), (6, 0.5, 0.1), (7, 0.5, 0.1)] and len(computed) == 3  # the last step too
    silent = Progress(False, 7, 0, 3, 0, 1)
    for step in range(1, 8):
        silent.step(step, lambda: computed.append(1), 0.1, 1)
    assert len(computed) == 3  # nobody listening: the loss is never read (no device sync)


def test_terminal_copy_appends_both_streams_and_the_error_that_ended_it(tmp_path, capsys):
    path = tmp_path / "logs" / "train.log"
    with TerminalCopy(path, enabled=True):
        print("first run")
    with pytest.raises(UserError):
        with TerminalCopy(path, enabled=True):
            print("to stderr", file=sys.stderr)
            raise UserError("the recipe is wrong; fix it.")
    assert path.read_text() == "first run\nto stderr\nerror: the recipe is wrong; fix it.\n"
    shown = capsys.readouterr()
    assert shown.out == "first run\n" and shown.err == "to stderr\n"  # the terminal still saw it
    assert not isinstance(sys.stdout, console._Tee) and not isinstance(sys.stderr, console._Tee)
    with TerminalCopy(tmp_path / "other.log", enabled=False):  # ranks other than 0 keep no copy
        print("rank 1")
    assert not (tmp_path / "other.log").exists()


def test_train_log_holds_what_the_terminal_showed_and_grows_on_resume(data, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["--data", str(data), "--output", str(out), "--workers", "0", *SMALL, "sched.epochs=1",
            "sched.warmup_epochs=0"]
    assert _train(args) == 0
    shown = capsys.readouterr().out
    log = (out / "train.log").read_text()
    for line in shown.splitlines():
        if line.startswith(("rsb ", "run folder", "precision:", "epoch 1/1")):
            assert line in log
    assert "epoch 1/1 step 2/6 loss" in log and "epoch 1/1: loss" in log
    assert _train([*args, "optim.lr=1"]) == 2  # refused: the error is in the log too
    assert "error: " in (out / "train.log").read_text().split(log, 1)[1]
    assert sys.stdout is not None and not isinstance(sys.stdout, console._Tee)  # streams restored
