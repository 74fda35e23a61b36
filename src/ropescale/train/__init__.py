"""Fine-tuning and pre-training: chunked loss, optimizer and schedule, checkpoints, FSDP2 setup, the loop,
and the `pretrain` / `train` commands (`run.py`)."""
