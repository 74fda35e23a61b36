"""The `custom_dataset` functions of the local-haystack RULER tasks (the *_local.yaml files here).

lm-eval's essay-haystack NIAH tasks (niah_single_2/3, niah_multikey_1, niah_multiquery, niah_multivalue)
download Paul Graham's essays. These build the same samples with lm-eval's own generator
(`prepare_niah.generate_samples`, the arguments lm-eval's `niah_utils` passes for each task) from a local
corpus instead: `haystack` in the task metadata, a `--data` spec of ropescale.data.corpora (default
shakespeare). The words are split exactly as lm-eval splits the essays (white space collapsed, then " ").
Scores from these tasks are marked "local haystack": they are not comparable with essay-haystack numbers.
lm-eval imports this file by path (`!function ruler_local.NAME`), so it imports ropescale absolutely.
"""

from __future__ import annotations

import re

from lm_eval.tasks.ruler.common_utils import (
    DEFAULT_SEQ_LENGTHS,
    aggregate_metrics,
    get_tokenizer,
    process_results,
    resolve_tokenizer_name,
)
from lm_eval.tasks.ruler.niah_utils import TEMPLATE, download_dataset
from lm_eval.tasks.ruler.prepare_niah import generate_samples

from ropescale.data.corpora import load_documents

__all__ = ["aggregate_metrics", "local_dataset", "process_results"]

DEFAULT_HAYSTACK = "shakespeare"
SAMPLES_PER_LENGTH = 500  # as lm-eval's niah_utils
# lm-eval's niah_utils: the needle arguments of each essay-haystack task (keys are always words)
NEEDLES = {
    "niah_single_2": {"type_needle_v": "numbers"},
    "niah_single_3": {"type_needle_v": "uuids"},
    "niah_multikey_1": {"type_needle_v": "numbers", "num_needle_k": 4},
    "niah_multiquery": {"type_needle_v": "numbers", "num_needle_q": 4},
    "niah_multivalue": {"type_needle_v": "numbers", "num_needle_v": 4},
}


def haystack_words(spec: str) -> list[str]:
    """The corpus as one list of words, split as lm-eval splits the essays (prepare_niah.get_haystack)."""
    return re.sub(r"\s+", " ", " ".join(load_documents(spec))).split(" ")


def local_dataset(task: str, **kwargs) -> dict:
    """{"test": Dataset} of `task`'s samples at each of kwargs["max_seq_lengths"], with a local haystack."""
    lengths = kwargs.pop("max_seq_lengths", DEFAULT_SEQ_LENGTHS)
    tokenizer = get_tokenizer(resolve_tokenizer_name(kwargs))
    words = haystack_words(kwargs.get("haystack") or DEFAULT_HAYSTACK)
    return download_dataset(
        generate_samples(
            words,
            TOKENIZER=tokenizer,
            max_seq_length=length,
            template=TEMPLATE,
            type_haystack="essay",
            type_needle_k="words",
            num_samples=SAMPLES_PER_LENGTH,
            **NEEDLES[task],
        )
        for length in lengths
    )


def niah_single_2(**kwargs) -> dict:
    return local_dataset("niah_single_2", **kwargs)


def niah_single_3(**kwargs) -> dict:
    return local_dataset("niah_single_3", **kwargs)


def niah_multikey_1(**kwargs) -> dict:
    return local_dataset("niah_multikey_1", **kwargs)


def niah_multiquery(**kwargs) -> dict:
    return local_dataset("niah_multiquery", **kwargs)


def niah_multivalue(**kwargs) -> dict:
    return local_dataset("niah_multivalue", **kwargs)
