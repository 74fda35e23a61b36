"""Evaluations: sliding-window perplexity, passkey retrieval, summarization (ROUGE), short-context checks."""
