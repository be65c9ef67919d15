"""bert-attention-bench: how much an optimized attention implementation speeds up and slims
each BERT task head against eager attention, on your GPU."""

__version__ = "0.5.0"
