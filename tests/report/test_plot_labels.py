"""Plot legends name what differs between the lines; what the lines share goes once into the title."""

from __future__ import annotations

from ropescale.report.plots import _parts, line_labels


def _model(name="smollm2-135m", method="none", factor=1.0, window=8192):
    return {"name": name, "method": method, "factor": factor, "window": window}


def test_only_the_differing_parts_label_the_lines():
    parts = [
        _parts(_model(), length="at 16384 tokens", data="data shakespeare"),
        _parts(
            _model(method="linear", factor=2.0, window=16384),
            length="at 16384 tokens",
            data="data shakespeare",
        ),
    ]
    labels, shared = line_labels(parts)
    assert labels == ["none, window 8192", "linear x2, window 16384"]
    assert shared == "smollm2-135m, at 16384 tokens, data shakespeare"


def test_one_line_is_labelled_in_full():
    labels, shared = line_labels([_parts(_model(), data="data pystdlib")])
    assert labels == ["smollm2-135m, none, window 8192, data pystdlib"] and shared == ""


def test_a_part_missing_from_some_lines_counts_as_differing():
    labels, _ = line_labels([{"model": "a", "length": "at 512 tokens"}, {"model": "a"}])
    assert labels == ["at 512 tokens", "a"]  # never an empty label
