"""The study command's ends (rsb.study.main): the study's table and files printed, a bad input in one sentence
with exit status 2, and Ctrl-C saying the runs resume (the study itself: tests/config/test_original_recipes.py)."""
from __future__ import annotations

import pytest

from rsb import study
from rsb.errors import UserError


def _degradation_args(tmp_path, *more):
    return ["degradation", "--out", str(tmp_path / "study"), "--cluster", "local", *more]


def test_a_finished_study_prints_its_table_and_where_the_files_are(tmp_path, monkeypatch, capsys):
    seen = {}

    def finished(out, data, seeds, executor, overrides, extra):
        seen.update(out=out, seeds=seeds, overrides=overrides, cluster=executor.cluster)
        return {"table": "| model | test error |", "figure": out / "figure6.png", "report": out / "report.md"}

    monkeypatch.setattr(study, "run_degradation", finished)
    assert study.main(_degradation_args(tmp_path, "--seeds", "1-2", "sched.epochs=3")) == 0
    assert seen == {"out": tmp_path / "study", "seeds": [1, 2], "overrides": ["sched.epochs=3"], "cluster": "local"}
    assert capsys.readouterr().out == (f"\n| model | test error |\nfigure: {tmp_path / 'study' / 'figure6.png'}; "
                                       f"table: {tmp_path / 'study' / 'report.md'}\n")


def test_runs_still_going_print_nothing_more(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(study, "run_degradation", lambda *a: None)  # Slurm: submitted, drawn by a later call
    assert study.main(_degradation_args(tmp_path)) == 0
    assert capsys.readouterr().out == ""


def test_bad_input_is_one_sentence_and_exit_status_2(tmp_path, capsys):
    assert study.main(_degradation_args(tmp_path, "--seeds", "one")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "one" in err


@pytest.mark.parametrize("stop, status", [(KeyboardInterrupt, 130), (UserError("data is wrong; fix it."), 2)])
def test_how_a_stopped_study_ends(tmp_path, monkeypatch, capsys, stop, status):
    def stopped(*args):
        raise stop

    monkeypatch.setattr(study, "run_degradation", stopped)
    assert study.main(_degradation_args(tmp_path)) == status
    err = capsys.readouterr().err
    if status == 130:
        assert err == "interrupted: the stopped runs saved a checkpoint; the same command resumes them\n"
    else:
        assert err == "error: data is wrong; fix it.\n"
