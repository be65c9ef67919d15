"""What is measured and how: timing, variants (loop, graph, compiled), probes, host, energy, failures."""
