"""The models: task heads and presets, batches, and the holder that loads and calls them."""
