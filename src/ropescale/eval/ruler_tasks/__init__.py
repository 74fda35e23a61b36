"""lm-evaluation-harness task YAML files of the local-haystack RULER tasks (an lm-eval `include_path`), their
`custom_dataset` functions (ruler_local.py) and an untrained Punkt sentence splitter for nltk (nltk_data/)."""
