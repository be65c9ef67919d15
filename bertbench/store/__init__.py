"""The files a run writes and reads: result CSVs, manifests, one atomic write, signal deferral."""
