"""A run: the sweep over grid points, one point, its rows, capacity, torchrun, manifest, console."""
