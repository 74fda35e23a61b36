"""The paper's prompts, verbatim (arXiv 2306.15595, sections 3.3 and 3.5), shared by evaluation and training."""

from __future__ import annotations

# Passkey retrieval (Mohtashami & Jaggi 2023; PI paper Figure 3). Lines are joined with "\n".
PASSKEY_TASK = (
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize them. "
    "I will quiz you about the important information there."
)
PASSKEY_GARBAGE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
PASSKEY_KEY_LINE = "The pass key is {key}. Remember it. {key} is the pass key."
PASSKEY_QUESTION = "What is the pass key? The pass key is"

# Long-document summarization (PI paper Figure 4); the document replaces "# .... Document goes here".
SUMMARIZE_PREFIX = "Read the following article and then summarize it.\n"
SUMMARIZE_SUFFIX = "\nNow summarize the above article.\nSummary:"


def passkey_key_line(key: int) -> str:
    return PASSKEY_KEY_LINE.format(key=key)


def summarize_prompt(document: str) -> str:
    return SUMMARIZE_PREFIX + document + SUMMARIZE_SUFFIX
