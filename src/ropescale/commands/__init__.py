"""The verbs: one module per command, each with its ``run_*(cfg) -> result`` (a TypedDict), its
``format_*(result) -> str`` and what only that command does (extend's save-and-verify, train's run
directory and resume). cli.COMMANDS names them; api and demo call them in process. The domain packages
below (models, train, eval, theory, report) are plain libraries that know nothing of the commands.

`pretrain` and `train` share train.py (pretraining is training the tiny model from scratch); `demo` is an
experiment made of commands and lives in demo/, a floor above.
"""
