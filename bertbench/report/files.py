"""Charts and reports written whole: each to a temporary file beside its path, then renamed over
it (store.csvfile.replace_with), so an interrupted plot.py or compare never leaves one cut short."""

from __future__ import annotations

import io
from pathlib import Path

from bertbench.store.csvfile import replace_with


def write_text(path: Path, text: str) -> None:
    replace_with(path, text.encode(), "new")


def save_figure(fig, path: Path, **savefig) -> None:
    """fig.savefig(path, **savefig), in the format its suffix names, put in place whole."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix[1:], **savefig)
    replace_with(path, buffer.getvalue(), "new")
