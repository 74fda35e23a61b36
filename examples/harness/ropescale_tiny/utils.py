"""Loader for the local ropescale_tiny task: the jsonl beside this file, as a datasets split."""

from pathlib import Path


def load(**kwargs):
    import json

    import datasets

    rows = [
        json.loads(line) for line in (Path(__file__).parent / "data.jsonl").read_text().splitlines() if line
    ]
    return {"test": datasets.Dataset.from_list(rows)}
