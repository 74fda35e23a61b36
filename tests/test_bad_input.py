"""Every command's bad-input path, as a table: exit code 2, one line on stderr that names the flag or file,
no traceback, and nothing written (a listing of the scratch tree, which holds every output path and its
parent, is the same before and after). In-process through `ropescale.cli.main`, so the table stays fast."""

from __future__ import annotations

import json
import shlex
import shutil

import pytest
import torch

from ropescale.cli import main

from .conftest import save_tiny_llama, tiny_llama_config

NO_CUDA = not torch.cuda.is_available()
TRAIN = (
    "train {m} --data {d} --method linear --factor 2 --steps 1 --batch-size 2 --micro-batch-size 2 --out {o}"
)
PRETRAIN = "pretrain --data {d} --seq-len 32 --steps 1 --batch-size 2 --micro-batch-size 2 --out {o}"
EXTEND = "extend {m} --method linear --factor 2 --out {o}"
PPL = "eval ppl --model {m} --data {d} --lengths 64 --stride 64"
PASSKEY = "eval passkey --model {m} --lengths 64 --num-k 1 --trials 1"
SUMMARIZE = "eval summarize --model {m} --data {w}/records.jsonl --max-docs 1"
HARNESS = "eval harness --model {m} --data {d} --max-docs 1"
RESUME = (
    "train {m} --data {d} --method linear --factor 2 --steps 2 --batch-size 2 --micro-batch-size 2 "
    "--save-every 1 --eval-sequences 1 --warmup-steps 1 --lr 0.001 --no-activation-checkpointing --out {w}/done "
    "--resume"
)

# (id, argv, what the one stderr line must contain); {m} model, {d} corpus, {o} a fresh output path, {w} the
# scratch tree (see `world`)
CASES = [
    # the command line itself
    ("no-such-command", "nope", "invalid choice: 'nope'"),
    ("eval-without-command", "eval", "the following arguments are required: COMMAND"),
    ("unknown-flag", f"{EXTEND} --bogus 1", "unrecognized arguments: --bogus"),
    ("config-missing", f"{EXTEND} --config {{w}}/nope.json", "--config {w}/nope.json: no such file"),
    ("config-not-json", f"{EXTEND} --config {{w}}/broken.json", "--config {w}/broken.json: not valid JSON"),
    ("config-unknown-key", f"{EXTEND} --config {{w}}/unknown.json", "unknown keys ['colour']"),
    ("config-directory", f"{EXTEND} --config {{w}}/full", "--config {w}/full: a directory, not a JSON or TOML file"),
    ("config-out-number", "extend {m} --method linear --factor 2 --config {w}/out-number.toml", "--config {w}/out-number.toml: out = 5: expected a string"),
    ("config-rope-number", f"{EXTEND} --config {{w}}/rope-number.toml", "--config {w}/rope-number.toml: rope is a group of knobs"),
    ("config-steps-float", f"{TRAIN} --config {{w}}/steps-float.json", "--config {w}/steps-float.json: steps = 1.5: expected an integer"),
    ("config-bool", f"{EXTEND} --config {{w}}/overwrite-text.json", "--config {w}/overwrite-text.json: overwrite = 'yes': expected true or false"),
    ("config-bad-factor-overridden", f"{EXTEND} --config {{w}}/factor-half.toml", "--config {w}/factor-half.toml: --factor must be >= 1, got 0.5"),
    ("config-bad-method-overridden", f"{EXTEND} --config {{w}}/method-bad.json", "--config {w}/method-bad.json: --method must be one of"),
    # extend
    ("extend-method", "extend {m} --method ntk-by-parts --out {o}", "--method must be one of"),
    ("extend-factor-small", "extend {m} --method linear --factor 0.5 --out {o}", "--factor must be >= 1"),
    ("extend-factor-nan", "extend {m} --method linear --factor nan --out {o}", "--factor must be >= 1"),
    ("extend-factor-text", "extend {m} --method linear --factor two --out {o}", "argument --factor"),
    ("extend-no-out", "extend {m} --method linear --factor 2", "required: --out"),
    ("extend-no-model", "extend --out {o}", "required: MODEL"),
    ("extend-model-missing", "extend {w}/nope --out {o}", "MODEL {w}/nope: no such file"),
    ("extend-model-file", "extend {w}/afile --out {o}", "MODEL {w}/afile: a file must be a .gguf"),
    ("extend-model-no-config", "extend {w}/outs --out {o}", "MODEL {w}/outs: directory has no config.json"),
    ("extend-no-rope", "extend {w}/gpt2 --method linear --factor 2 --out {o}", "no rotary position embedding"),
    ("extend-corrupt-gguf", "extend {w}/broken.gguf --out {o}", "MODEL {w}/broken.gguf: not a readable GGUF"),
    ("extend-header-only-gguf", "extend {w}/header.gguf --out {o}", "MODEL {w}/header.gguf: not a readable GGUF"),
    ("extend-out-not-empty", "extend {m} --method linear --factor 2 --out {w}/full", "--out {w}/full exists and is not empty; pass --overwrite"),
    ("extend-out-is-file", "extend {m} --method linear --factor 2 --out {w}/afile", "--out {w}/afile exists and is not a directory"),
    ("extend-out-under-file", "extend {m} --method linear --factor 2 --out {w}/afile/sub", "--out {w}/afile/sub: {w}/afile is a file"),
    ("extend-out-dangling", f"{EXTEND.replace('{o}', '{w}/dangling')}", "--out {w}/dangling: {w}/dangling is a symbolic link to nothing"),
    ("extend-out-loop", f"{EXTEND.replace('{o}', '{w}/loop')}", "--out {w}/loop: {w}/loop is a symbolic link loop"),
    ("extend-out-under-dangling", f"{EXTEND.replace('{o}', '{w}/dangling/x')}", "--out {w}/dangling/x: {w}/dangling is a symbolic link to nothing"),
    ("extend-out-dot", f"{EXTEND.replace('{o}', '.')}", "--out '.': not a name for a new file or directory"),
    ("extend-out-dotdot", f"{EXTEND.replace('{o}', '{w}/outs/..')} --overwrite", "--out '{w}/outs/..': not a name"),
    ("extend-out-empty", EXTEND.replace("{o}", "''"), "--out '.': not a name for a new file or directory"),
    ("extend-longrope-bare", "extend {m} --method longrope --factor 2 --out {o}", "--method longrope needs both --short-factor and --long-factor"),
    ("extend-longrope-length", "extend {m} --method longrope --factor 2 --short-factor 1,1 --long-factor 2,2 --out {o}", "--long-factor/--short-factor need head_dim/2 = 8"),
    ("extend-longrope-uneven", "extend {m} --method longrope --factor 2 --short-factor 1,1 --long-factor 2 --out {o}", "--short-factor and --long-factor must have the same length"),
    ("extend-list-text", "extend {m} --method longrope --factor 2 --short-factor 1,x --long-factor 2,2 --out {o}", "argument --short-factor: expected comma-separated float"),
    ("extend-negative-factors", "extend {m} --method longrope --factor 2 --short-factor -1 --long-factor 2 --out {o}", "--short-factor must be a non-empty list of positive numbers"),
    ("extend-abf-no-theta", "extend {m} --method abf --factor 2 --out {o}", "--method abf needs --rope-theta"),
    ("extend-abf-theta-low", "extend {m} --method abf --rope-theta 1 --out {o}", "--rope-theta must be a number > 1"),
    ("extend-abf-theta-text", "extend {m} --method abf --rope-theta big --out {o}", "argument --rope-theta"),
    ("extend-theta-not-abf", "extend {m} --method ntk --factor 2 --rope-theta 5e6 --out {o}", "--rope-theta applies to --method abf only"),
    ("extend-beta", "extend {m} --method yarn --factor 2 --beta-fast 1 --beta-slow 2 --out {o}", "--beta-fast must be greater than --beta-slow"),
    ("extend-freq-factors", "extend {m} --method llama3 --factor 2 --low-freq-factor 4 --high-freq-factor 1 --out {o}", "--high-freq-factor must be greater"),
    ("extend-attention-factor", "extend {m} --method yarn --factor 2 --attention-factor -1 --out {o}", "--attention-factor must be a positive number"),
    ("extend-mscale", "extend {m} --method yarn --factor 2 --mscale 0 --out {o}", "--mscale must be a positive number"),
    ("extend-original-zero", "extend {m} --method linear --factor 2 --original-max-position-embeddings 0 --out {o}", "--original-max-position-embeddings must be a positive integer"),
    ("extend-original-too-large", "extend {m} --method yarn --factor 2 --original-max-position-embeddings 4096 --out {o}", "--original-max-position-embeddings 4096 is larger than the model's window"),
    ("extend-dtype", "extend {m} --method linear --factor 2 --dtype float8 --out {o}", "--dtype must be one of"),
    ("extend-device-unknown", "extend {m} --method linear --factor 2 --device tpu9 --out {o}", "--device 'tpu9' is not a torch device"),
    pytest.param("extend-device-cuda", "extend {m} --method linear --factor 2 --device cuda --out {o}", "--device cuda: this torch", marks=pytest.mark.skipif(not NO_CUDA, reason="a GPU is present")),
    ("extend-config-out-exists", f"{EXTEND.replace(' --out {o}', '')} --config {{w}}/out-full.json", "--out {w}/full exists and is not empty"),
    # inspect
    ("inspect-missing", "inspect {w}/nope", "MODEL {w}/nope: no such file"),
    ("inspect-no-rope", "inspect {w}/gpt2", "no rotary position embedding"),
    ("inspect-factor", "inspect {m} --method yarn --factor 0", "--factor must be >= 1"),
    ("inspect-original-too-large", "inspect {m} --method linear --factor 2 --original-max-position-embeddings 999", "--original-max-position-embeddings 999 is larger"),
    ("inspect-header-only-gguf", "inspect {w}/header.gguf", "MODEL {w}/header.gguf: not a readable GGUF"),
    ("inspect-own-factor-half", "inspect {w}/half", "MODEL {w}/half: its config's rope_parameters are not valid (factor must be >= 1, got 0.5)"),
    ("extend-own-factor-half", "extend {w}/half --method linear --factor 2 --out {o}", "MODEL {w}/half: its config's rope_parameters"),
    ("inspect-device", "inspect {m} --device tpu9", "--device 'tpu9'"),
    # theory
    ("theory-nothing", "theory", "give a MODEL to analyse, --figures DIR, or both"),
    ("theory-head-dim", "theory --figures {o} --head-dim 7", "--head-dim must be even"),
    ("theory-base", "theory --figures {o} --base 1", "--base must be a number > 1"),
    ("theory-eps", "theory --figures {o} --eps -1", "--eps must be a number >= 0"),
    ("theory-window", "theory --figures {o} --window 0", "--window must be an integer >= 1"),
    ("theory-factor-huge", "theory {m} --method linear --factor 1e300", "--factor must be in [1, 1024], got 1e+300"),
    ("theory-yarn-huge", "theory {m} --method yarn --factor 1e12", "--factor must be in [1, 1024]"),
    ("theory-base-huge", "theory --figures {o} --base 1e300", "--base must be a number > 1 and <= 1e12"),
    ("theory-window-huge", "theory --figures {o} --window 100000000", "--window must be an integer in [1, 16384]"),
    ("theory-seed-negative", "theory --figures {o} --seed -1", "--seed must be an integer >= 0, got -1"),
    ("theory-figures-not-empty", "theory --figures {w}/full", "--figures {w}/full exists and is not empty"),
    ("theory-figures-under-file", "theory --figures {w}/afile/figs", "--figures {w}/afile/figs: {w}/afile is a file"),
    ("theory-out-exists", "theory {m} --out {w}/res.json", "--out {w}/res.json exists; pass --overwrite"),
    ("theory-out-is-dir", "theory {m} --out {w}/full", "--out {w}/full is a directory"),
    ("theory-no-rope", "theory {w}/gpt2", "no rotary position embedding"),
    ("theory-text-binary", "theory {m} --text {w}/binary.txt", "--text {w}/binary.txt: looks like a binary file"),
    ("theory-text-directory", "theory {m} --text {w}/full", "--text {w}/full: a directory, not a text file"),
    ("theory-text-empty", "theory {m} --text {w}/empty/blank.txt", "--text {w}/empty/blank.txt: empty (no text)"),
    ("theory-tokens", "theory {m} --tokens 1", "--tokens must be an integer >= 2"),
    # pretrain
    ("pretrain-seq-len", "pretrain --seq-len 1 --out {o}", "--seq-len must be an integer >= 2"),
    ("pretrain-heads", f"{PRETRAIN} --hidden-size 30 --num-heads 4", "--hidden-size (30) must be divisible by --num-heads (4)"),
    ("pretrain-kv-heads", f"{PRETRAIN} --num-heads 4 --num-kv-heads 3", "--num-heads by --num-kv-heads (3)"),
    ("pretrain-head-dim", f"{PRETRAIN} --head-dim 7", "--head-dim must be even"),
    ("pretrain-steps", f"{PRETRAIN} --steps 0", "--steps must be an integer >= 1"),
    ("pretrain-lr-zero", f"{PRETRAIN} --lr 0", "--lr must be a positive number"),
    ("pretrain-lr-inf", f"{PRETRAIN} --lr inf", "--lr must be a positive number"),
    ("pretrain-lr-huge", f"{PRETRAIN} --lr 1e39", "--lr must be a positive number"),
    ("pretrain-batch", f"{PRETRAIN} --batch-size 3", "--batch-size (3) must be a multiple of --micro-batch-size (2)"),
    ("pretrain-data-empty", "pretrain --data {w}/empty --seq-len 32 --out {o}", "--data {w}/empty: no documents found"),
    ("pretrain-data-missing", "pretrain --data {w}/nope --seq-len 32 --out {o}", "--data {w}/nope: no such file"),
    ("pretrain-data-binary", "pretrain --data {w}/binary.txt --seq-len 32 --out {o}", "--data {w}/binary.txt: looks like a binary file"),
    ("pretrain-data-bad-jsonl", "pretrain --data {w}/bad.jsonl --seq-len 32 --out {o}", "--data {w}/bad.jsonl:2: not valid JSON"),
    ("pretrain-data-field", "pretrain --data {w}/records.jsonl --seq-len 32 --out {o}", "--data {w}/records.jsonl:1: no string field 'text'"),
    ("pretrain-tokenizer-chars", f"{PRETRAIN} --tokenizer-chars 10", "--tokenizer-chars must be an integer >= 1000"),
    ("pretrain-out-file", "pretrain --data {d} --seq-len 32 --out {w}/afile", "--out {w}/afile exists and is not a directory"),
    ("pretrain-out-not-empty", "pretrain --data {d} --seq-len 32 --out {w}/full", "--out {w}/full exists and is not empty"),
    ("pretrain-resume-overwrite", f"{PRETRAIN} --resume --overwrite", "--resume and --overwrite contradict"),
    ("pretrain-resume-nothing", f"{PRETRAIN} --resume", "--resume: no checkpoint in {o}/checkpoints"),
    ("pretrain-val-fraction", f"{PRETRAIN} --val-fraction 1", "--val-fraction must be < 1"),
    ("pretrain-warmup-start", f"{PRETRAIN} --warmup-start 2", "--warmup-start must be in [0, 1]"),
    ("pretrain-beta1", f"{PRETRAIN} --beta1 1", "--beta1 must be in [0, 1)"),
    ("pretrain-schedule", f"{PRETRAIN} --schedule linear", "--schedule must be one of"),
    ("pretrain-passkey-loss", f"{PRETRAIN} --passkey-loss xyz", "--passkey-loss must be one of"),
    ("pretrain-max-tokens", f"{PRETRAIN} --max-tokens 0", "--max-tokens must be an integer >= 1"),
    ("pretrain-device", f"{PRETRAIN} --device tpu9", "--device 'tpu9'"),
    ("pretrain-weight-decay", f"{PRETRAIN} --weight-decay -1", "--weight-decay must be a number >= 0"),
    ("pretrain-hub-offline", "pretrain --data hf:nobody/nothing --seq-len 32 --out {o}", "--data hf:nobody/nothing: could not load"),
    # train
    ("train-seq-len-beyond", f"{TRAIN} --seq-len 1000", "--seq-len 1000 is beyond the model's window after scaling (128)"),
    ("train-seq-len-text", f"{TRAIN} --seq-len long", "argument --seq-len: invalid int value"),
    ("train-target-window", f"{TRAIN} --positions pose --seq-len 32 --target-window 9999", "--target-window 9999 is beyond"),
    ("train-positions", f"{TRAIN} --positions zigzag", "--positions must be one of"),
    ("train-target-window-contiguous", f"{TRAIN} --target-window 64", "--target-window goes with --positions pose"),
    ("train-pose-dynamic", "train {m} --data {d} --method dynamic --factor 2 --positions pose --seq-len 32 --out {o}", "--positions pose does not go with --method dynamic"),
    ("train-pose-nothing-to-skip", f"{TRAIN} --positions pose --seq-len 128", "--positions pose: the sequences (--seq-len 128) already cover"),
    ("train-pose-chunks", f"{TRAIN} --positions pose --seq-len 32 --pose-chunks 0", "--pose-chunks must be an integer >= 1"),
    ("train-task", f"{TRAIN} --task foo", "--task must be one of"),
    ("train-summarize-passkey", f"{TRAIN} --task summarize --passkey-fraction 0.5", "--passkey-fraction mixes language-modelling documents"),
    ("train-lora-rank", f"{TRAIN} --lora --lora-rank 0", "--lora-rank must be an integer >= 1"),
    ("train-data-empty", "train {m} --data {w}/empty --method linear --factor 2 --out {o}", "--data {w}/empty: no documents found"),
    ("train-data-missing", "train {m} --data {w}/nope --method linear --factor 2 --out {o}", "--data {w}/nope: no such file"),
    ("train-data-binary", "train {m} --data {w}/binary.txt --method linear --factor 2 --out {o}", "--data {w}/binary.txt: looks like a binary file"),
    ("train-data-blank", "train {m} --data , --method linear --factor 2 --out {o}", "--data is empty"),
    ("train-data-suffix", "train {m} --data {w}/table.csv --method linear --factor 2 --out {o}", "--data {w}/table.csv: expected a .txt"),
    ("train-data-summarize-fields", f"{TRAIN.replace('{d}', '{w}/bad-records.jsonl')} --task summarize", "--data {w}/bad-records.jsonl:1: no string field 'report'"),
    ("train-data-too-little", "train {m} --data {w}/short.txt --method linear --factor 2 --out {o}", "--data {w}/short.txt: too little text"),
    ("train-max-tokens", f"{TRAIN} --max-tokens 0", "--max-tokens must be an integer >= 1"),
    ("train-original-too-large", f"{TRAIN} --original-max-position-embeddings 4096", "--original-max-position-embeddings 4096 is larger"),
    ("train-overwrite-empty-data", "train {m} --data {w}/empty --method linear --factor 2 --out {w}/done --overwrite", "--data {w}/empty: no documents found"),
    ("train-overwrite-too-little-data", "train {m} --data {w}/short.txt --method linear --factor 2 --out {w}/done --overwrite", "--data {w}/short.txt: too little text"),
    ("train-resume-lr", f"{RESUME} --steps 3 --lr 0.01", "{w}/done/checkpoints/step-0000002 was made with a different setup (recipe"),
    ("train-resume-dtype", f"{RESUME} --steps 3 --dtype bfloat16", "different setup (recipe"),
    ("train-resume-finished", RESUME, "step-0000002 is at step 2 and --steps is 2: nothing to train"),
    ("train-resume-fewer-steps", f"{RESUME} --steps 1", "is at step 2 and --steps is 1"),
    ("train-resume-other-data", f"{RESUME.replace('{d}', '{w}/other.txt')} --steps 3", "different setup (data"),
    ("train-resume-other-rope", f"{RESUME.replace('--factor 2', '--factor 4')} --steps 3", "rope: checkpoint"),
    ("train-resume-nothing", f"{TRAIN} --resume", "--resume: no checkpoint in {o}/checkpoints"),
    ("train-out-under-file", "train {m} --data {d} --method linear --factor 2 --out {w}/afile/run", "--out {w}/afile/run: {w}/afile is a file"),
    ("train-out-dangling", "train {m} --data {d} --method linear --factor 2 --out {w}/dangling", "--out {w}/dangling: {w}/dangling is a symbolic link to nothing"),
    ("train-out-loop", "train {m} --data {d} --method linear --factor 2 --out {w}/loop --resume", "--out {w}/loop: {w}/loop is a symbolic link loop"),
    ("train-out-file", "train {m} --data {d} --method linear --factor 2 --out {w}/afile", "--out {w}/afile exists and is not a directory"),
    ("train-out-not-empty", "train {m} --data {d} --method linear --factor 2 --out {w}/done", "--out {w}/done exists and is not empty"),
    ("train-device-unknown", f"{TRAIN} --device tpu9", "--device 'tpu9' is not a torch device"),
    pytest.param("train-device-cuda", f"{TRAIN} --device cuda", "--device cuda: this torch", marks=pytest.mark.skipif(not NO_CUDA, reason="a GPU is present")),
    ("train-seed-huge", f"{TRAIN} --seed 18446744073709551616", "--seed must be an integer in [0,"),
    ("train-micro-batch", f"{TRAIN} --micro-batch-size 0", "--micro-batch-size must be an integer >= 1"),
    ("train-keep", f"{TRAIN} --keep-checkpoints 0", "--keep-checkpoints must be an integer >= 1"),
    ("train-eval-sequences", f"{TRAIN} --eval-sequences 0", "--eval-sequences must be an integer >= 1"),
    ("train-passkey-min-fill", f"{TRAIN} --passkey-min-fill 2", "--passkey-min-fill must be in [0, 1]"),
    ("train-no-rope", "train {w}/gpt2 --data {d} --out {o}", "no rotary position embedding"),
    ("train-model-missing", "train {w}/nope --data {d} --out {o}", "MODEL {w}/nope: no such file"),
    ("train-method", "train {m} --data {d} --method nope --out {o}", "--method must be one of"),
    ("train-hub-offline", "train {m} --data hf:nobody/nothing --method linear --factor 2 --out {o}", "--data hf:nobody/nothing: could not load"),
    # eval ppl
    ("ppl-lengths-small", "eval ppl --model {m} --data {d} --lengths 1", "--lengths must be an integer >= 2"),
    ("ppl-lengths-empty", "eval ppl --model {m} --data {d} --lengths ,", "--lengths must name at least one length"),
    ("ppl-beyond-window", "eval ppl --model {m} --data {d} --lengths 999", "--lengths 999 exceed the model's window 64"),
    ("ppl-stride", "eval ppl --model {m} --data {d} --lengths 64 --stride 500", "--stride 500 must be <= every --lengths value"),
    ("ppl-out-exists", f"{PPL} --out {{w}}/res.json", "--out {w}/res.json exists; pass --overwrite"),
    ("ppl-out-dir", f"{PPL} --out {{w}}/full", "--out {w}/full is a directory"),
    ("ppl-out-under-file", f"{PPL} --out {{w}}/afile/res.json", "--out {w}/afile/res.json: {w}/afile is a file, not a directory"),
    ("ppl-out-dangling-parent", f"{PPL} --out {{w}}/dangling/res.json", "--out {w}/dangling/res.json: {w}/dangling is a symbolic link to nothing"),
    ("ppl-out-dot", f"{PPL} --out .", "--out '.': not a name"),
    ("ppl-data-empty", "eval ppl --model {m} --data {w}/empty --lengths 64 --stride 64", "--data {w}/empty: no documents found"),
    ("ppl-data-binary", "eval ppl --model {m} --data {w}/binary.txt --lengths 64 --stride 64", "--data {w}/binary.txt: looks like a binary file"),
    ("ppl-truncate", "eval ppl --model {m} --data {d} --truncate-to 1", "--truncate-to must be an integer >= 2"),
    ("ppl-truncate-short", "eval ppl --model {m} --data {d} --lengths 64 --truncate-to 32 --stride 32", "--lengths 64 is longer than the documents (--truncate-to 32)"),
    ("ppl-seed-negative", f"{PPL} --seed -1", "--seed must be an integer >= 0, got -1"),
    ("ppl-seed-huge", f"{PPL} --seed 99999999999999999999999", "--seed must be an integer in [0, 4294967295]"),
    ("ppl-bootstrap", f"{PPL} --bootstrap 0", "--bootstrap must be an integer >= 1"),
    ("ppl-max-docs", f"{PPL} --max-docs 0", "--max-docs must be an integer >= 1"),
    ("ppl-batch-tokens", f"{PPL} --batch-tokens 0", "--batch-tokens must be an integer >= 1"),
    ("ppl-model-missing", "eval ppl --model {w}/nope --data {d}", "MODEL {w}/nope: no such file"),
    ("ppl-original-too-large", f"{PPL} --method linear --factor 2 --original-max-position-embeddings 100", "--original-max-position-embeddings 100 is larger"),
    # eval passkey
    ("passkey-lengths-small", "eval passkey --model {m} --lengths 32", "--lengths must be an integer >= 64"),
    ("passkey-prompt-too-short", "eval passkey --model {w}/chars --lengths 64 --num-k 2 --trials 1", "--lengths 64: the passkey prompt needs at least"),
    ("passkey-beyond-window", "eval passkey --model {m} --lengths 9999", "--lengths 9999 exceed the model's window"),
    ("passkey-num-k", "eval passkey --model {m} --num-k 0", "--num-k 0 needs --depths"),
    ("passkey-depths", "eval passkey --model {m} --depths 2", "--depths must lie in [0, 1]"),
    ("passkey-trials", "eval passkey --model {m} --trials 0", "--trials must be an integer >= 1"),
    ("passkey-out-exists", f"{PASSKEY} --out {{w}}/res.json", "--out {w}/res.json exists; pass --overwrite"),
    ("passkey-out-under-file", f"{PASSKEY} --out {{w}}/afile/x.json", "--out {w}/afile/x.json"),
    # eval summarize
    ("summarize-no-data", "eval summarize --model {m}", "the following arguments are required: --data"),
    ("summarize-temperature", f"{SUMMARIZE} --temperature -1", "--temperature must be >= 0"),
    ("summarize-top-p", f"{SUMMARIZE} --top-p 0", "--top-p must be in (0, 1]"),
    ("summarize-fields", "eval summarize --model {m} --data {w}/bad-records.jsonl", "--data {w}/bad-records.jsonl:1: no string field 'report'"),
    ("summarize-out-exists", f"{SUMMARIZE} --out {{w}}/res.json", "--out {w}/res.json exists; pass --overwrite"),
    ("summarize-max-input", f"{SUMMARIZE} --max-input-tokens 0", "--max-input-tokens must be an integer >= 1"),
    # eval harness
    ("harness-nothing", "eval harness --model {m} --no-ppl", "--no-ppl needs --tasks"),
    ("harness-include-path", "eval harness --model {m} --include-path {w}/nope", "--include-path {w}/nope: not a directory"),
    ("harness-ppl-length", "eval harness --model {m} --ppl-length 1", "--ppl-length must be an integer >= 2"),
    ("harness-out-exists", f"{HARNESS} --out {{w}}/res.json", "--out {w}/res.json exists; pass --overwrite"),
    ("harness-limit", f"{HARNESS} --limit 0", "--limit must be an integer >= 1"),
    # report
    ("report-missing", "report {w}/nope.json --out {o}", "RESULTS {w}/nope.json: no such file"),
    ("report-not-json", "report {w}/broken.json --out {o}", "RESULTS {w}/broken.json: not a readable JSON file"),
    ("report-not-a-result", "report {w}/unknown.json --out {o}", "RESULTS {w}/unknown.json: not a ropescale eval result"),
    ("report-incomplete-result", "report {w}/res.json --out {o}", "RESULTS {w}/res.json: a ppl result lacks the field"),
    ("report-passkey-without-k", "report {w}/passkey-no-k.json --out {o}", "RESULTS {w}/passkey-no-k.json: a passkey result lacks the field 'k'"),
    ("report-binary", "report {w}/binary.txt --out {o}", "RESULTS {w}/binary.txt: not a readable JSON file"),
    ("report-directory", "report {w}/full --out {o}", "RESULTS {w}/full: a directory, not a result file"),
    ("report-out-not-empty", "report {w}/res.json --out {w}/full", "--out {w}/full exists and is not empty"),
    ("report-out-dangling", "report {w}/res.json --out {w}/dangling", "--out {w}/dangling: {w}/dangling is a symbolic link to nothing"),
    ("report-out-loop", "report {w}/res.json --out {w}/loop", "--out {w}/loop: {w}/loop is a symbolic link loop"),
    ("report-out-under-file", "report {w}/res.json --out {w}/afile/r", "--out {w}/afile/r: {w}/afile is a file"),
    # demo
    ("demo-model", "demo --model foo --out {o}", "--model must be one of"),
    ("demo-base-missing", "demo --model tiny --base {w}/nope --out {o}", "--base {w}/nope: not a model directory"),
    ("demo-base-no-rope", "demo --model tiny --quick --base {w}/gpt2 --out {o}", "--base {w}/gpt2: model type 'gpt2' has no rotary"),
    ("demo-base-smollm2", "demo --model smollm2-135m --base {m} --out {o}", "--base applies to --model tiny only"),
    ("demo-prepare-tiny", "demo --model tiny --prepare --out {o}", "--prepare applies to --model smollm2-135m only"),
    ("demo-out-not-empty", "demo --quick --out {w}/full", "--out {w}/full exists and is not empty"),
    ("demo-out-under-file", "demo --quick --out {w}/afile/demo", "--out {w}/afile/demo: {w}/afile is a file"),
]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A scratch tree: a tiny model, a corpus, a finished training run, and files that are wrong on purpose."""
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaForCausalLM

    from ropescale.commands.train import run_train
    from ropescale.config import RopeScaling, TrainConfig, build

    w = tmp_path_factory.mktemp("world")
    torch.manual_seed(0)
    save_tiny_llama(LlamaForCausalLM(tiny_llama_config()).eval(), w / "model")
    shutil.copytree(w / "model", w / "half")  # a checkpoint whose own config carries factor 0.5
    config = json.loads((w / "half" / "config.json").read_text())
    config["rope_parameters"] = {**config["rope_parameters"], "rope_type": "linear", "factor": 0.5}
    (w / "half" / "config.json").write_text(json.dumps(config))
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50)).save_pretrained(w / "gpt2")
    (w / "corpus").mkdir()
    for i in range(3):
        (w / "corpus" / f"{i}.txt").write_text(" ".join(f"word{j % 97}" for j in range(3000)))
    (w / "other.txt").write_text("different words " * 2000)
    (w / "short.txt").write_text("too short")
    (w / "empty").mkdir()
    (w / "empty" / "blank.txt").write_text("  \n")
    (w / "binary.txt").write_bytes(bytes(range(256)) * 64)
    (w / "bad.jsonl").write_text('{"text": "fine"}\n{not json\n')
    (w / "records.jsonl").write_text('{"report": "a long report", "summary": "short"}\n')
    (w / "bad-records.jsonl").write_text('{"text": "no report here"}\n')
    (w / "table.csv").write_text("a,b\n1,2\n")
    (w / "afile").write_text("a regular file")
    (w / "full").mkdir()
    (w / "full" / "keep.txt").write_text("precious")
    (w / "outs").mkdir()  # the parent of every fresh output path
    (w / "dangling").symlink_to(w / "nowhere")
    (w / "loop").symlink_to(w / "loop")
    (w / "res.json").write_text('{"kind": "ppl"}\n')
    (w / "broken.json").write_text("{not json")
    lengths = [{"length": 64, "k_max": 0, "accuracy": 0.5, "ks": [{"accuracy": 0.5}]}]
    model = {"name": "m", "method": "none", "factor": 1.0, "window": 64, "original_window": 64}
    (w / "passkey-no-k.json").write_text(
        json.dumps({"kind": "passkey", "model": model, "lengths": lengths, "depths": []})
    )
    (w / "unknown.json").write_text('{"colour": "red"}')
    (w / "out-number.toml").write_text("out = 5\n")
    (w / "rope-number.toml").write_text("rope = 3\n")
    (w / "steps-float.json").write_text('{"steps": 1.5}')
    (w / "overwrite-text.json").write_text('{"overwrite": "yes"}')
    (w / "factor-half.toml").write_text("factor = 0.5\n")  # --factor 2 on the command line overrides it
    (w / "method-bad.json").write_text('{"method": "ntk-by-parts"}')
    (w / "out-full.json").write_text(f'{{"out": "{w / "full"}"}}')
    (w / "broken.gguf").write_bytes(b"GGUF" + b"\x00garbage" * 50)
    _header_only_gguf(w / "header.gguf")
    _char_tokenizer_model(w / "chars")
    run_train(
        build(
            TrainConfig, model=str(w / "model"), out=w / "done", data=str(w / "corpus"), rope=RopeScaling("linear", 2.0),
            steps=2, batch_size=2, micro_batch_size=2, save_every=1, eval_sequences=1, warmup_steps=1,
            lr=1e-3, activation_checkpointing=False,
        )
    )  # fmt: skip
    return w


def _header_only_gguf(path):
    """A GGUF file with a valid header and metadata but no tensors."""
    import gguf

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()


def _char_tokenizer_model(path):
    """The tiny model with a character-level tokenizer: the passkey prompt alone is hundreds of tokens."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<eos>": 1, **{chr(c): c - 30 for c in range(32, 126)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<eos>")
    LlamaForCausalLM(tiny_llama_config(max_position_embeddings=1024)).save_pretrained(path)
    fast.save_pretrained(path)


def listing(root) -> list[tuple]:
    """Every path under `root` with its kind, and for files their size and modification time."""
    rows = []
    for p in sorted(root.rglob("*")):
        stat = p.lstat()  # links that lead nowhere are part of the tree too
        rows.append(
            (
                str(p.relative_to(root)),
                p.is_dir(),
                None if p.is_dir() else (stat.st_size, stat.st_mtime_ns, stat.st_mode),
            )
        )
    return rows


@pytest.mark.parametrize("case,argv,expect", CASES)
def test_bad_input(world, capsys, case, argv, expect):
    paths = {"m": world / "model", "d": world / "corpus", "o": world / "outs" / case, "w": world}
    before = listing(world)
    capsys.readouterr()
    code = main(shlex.split(argv.format(**paths)))
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and err.endswith("\n"), err  # one line: no progress bar, retry or warning
    assert "error: " in err and "Traceback" not in err
    assert expect.format(**paths) in err
    assert listing(world) == before  # nothing written, moved or deleted, not even a temporary directory


def test_written_weights_follow_the_umask(world, tmp_path):
    """`train`'s final model and checkpoints and `extend`'s checkpoint: model.safetensors has the mode of the
    run's other files (safetensors alone writes it 0600)."""
    import os
    import stat

    mask = os.umask(0)
    os.umask(mask)
    assert main(shlex.split(EXTEND.format(m=world / "model", o=tmp_path / "ext"))) == 0
    for d in (world / "done", world / "done" / "checkpoints" / "step-0000002", tmp_path / "ext"):
        for name in ("model.safetensors", "config.json"):
            if (d / name).exists():
                assert stat.S_IMODE((d / name).stat().st_mode) == 0o666 & ~mask, d / name


def test_missing_parents_of_out_are_created_by_every_command(world, tmp_path, capsys):
    """One rule (docs/design.md): a missing parent of --out is created, for a result file as for a
    directory; `eval ppl` refused it while `extend` created it."""
    ppl = PPL.format(m=world / "model", d=world / "corpus")
    assert main(shlex.split(f"{ppl} --out {tmp_path}/new/deeper/res.json")) == 0
    assert (tmp_path / "new" / "deeper" / "res.json").is_file()
    assert main(shlex.split(EXTEND.format(m=world / "model", o=tmp_path / "a" / "b" / "ext"))) == 0
    assert (tmp_path / "a" / "b" / "ext" / "config.json").is_file()
