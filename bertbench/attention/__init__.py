"""The attention implementations: a registry of names, availability, kernels and packed routes."""
