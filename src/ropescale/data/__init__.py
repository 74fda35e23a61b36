"""Training data: corpora (files, folders, datasets, built-in), tokenisation and packing, batch sampling."""

from .corpora import BUILTIN, load_documents, load_records
from .packing import DataRequest, Packed, pack
from .passkey import PasskeyMaker, passkey_text
from .sampler import BatchSampler, validation_batches

__all__ = [
    "BUILTIN",
    "BatchSampler",
    "DataRequest",
    "Packed",
    "PasskeyMaker",
    "load_documents",
    "load_records",
    "pack",
    "passkey_text",
    "validation_batches",
]
