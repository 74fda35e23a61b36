"""The one bound check every config uses: the same rule and message for train, eval and theory knobs."""

from __future__ import annotations

import pytest

from ropescale.config import PasskeyConfig, PplConfig, TheoryConfig, TrainConfig, build


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: build(TrainConfig, model="m", out="o", steps=1.5),
            "--steps must be an integer >= 1, got 1.5",
        ),  # from a file
        (
            lambda: build(TrainConfig, model="m", out="o", steps=True),
            "--steps must be an integer >= 1, got True",
        ),
        (
            lambda: build(TrainConfig, model="m", out="o", seq_len=1),
            "--seq-len must be an integer >= 2, got 1",
        ),
        (
            lambda: build(TrainConfig, model="m", out="o", weight_decay=-0.1),
            "--weight-decay must be a number >= 0, got -0.1",
        ),
        (
            lambda: build(TrainConfig, model="m", out="o", max_grad_norm=float("nan")),
            "--max-grad-norm must be a number >= 0",
        ),
        (lambda: PplConfig(model="m", lengths=[512, 1]), "--lengths must be an integer >= 2, got 1"),
        (lambda: PasskeyConfig(model="m", lengths=[32]), "--lengths must be an integer >= 64, got 32"),
        (lambda: PasskeyConfig(model="m", trials=0), "--trials must be an integer >= 1, got 0"),
        (lambda: TheoryConfig(model="m", tokens=1), "--tokens must be an integer >= 2, got 1"),
        (lambda: TheoryConfig(model="m", head_dim=0), "--head-dim must be an integer >= 1, got 0"),
    ],
)
def test_bounds_name_the_flag_and_the_rule(make, message):
    with pytest.raises(ValueError) as err:
        make()
    assert str(err.value).startswith(message)


def test_values_on_the_bound_and_floats_where_allowed_pass():
    build(
        TrainConfig, model="m", out="o", steps=1, seq_len=2, weight_decay=0, max_grad_norm=0.5, warmup_steps=0
    )
    PplConfig(model="m", lengths=[2, 4], stride=2)
    TheoryConfig(model="m", tokens=2, head_dim=2)
