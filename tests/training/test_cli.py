from __future__ import annotations

import argparse

import pytest

from training.cli import register


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stream-scorer")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_register_adds_train_materialize_and_simulate() -> None:
    parser = _parser()
    args = parser.parse_args(["train", "fraud", "--framework", "lightgbm", "--train-start", "2024-07-25",
                              "--train-days", "7", "--delay-days", "7", "--test-days", "7", "--seed", "5"])
    assert args.model == "fraud" and args.framework == "lightgbm" and args.train_days == 7
    assert args.train_start.isoformat() == "2024-07-25T00:00:00+00:00"
    assert callable(args.func)
    assert parser.parse_args(["materialize", "--data-dir", "x"]).func.__name__ == "run_materialize"
    assert parser.parse_args(["simulate", "personalization", "--out", "o.csv"]).model == "personalization"


@pytest.mark.parametrize("argv", [["train", "churn"], ["train", "fraud", "--framework", "catboost"],
                                  ["train", "fraud", "--train-start", "soon"]])
def test_bad_arguments_are_rejected(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(argv)
    assert "error" in capsys.readouterr().err
