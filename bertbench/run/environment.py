"""What produced a run: versions on every row, and the run's manifest with everything else.

Every run writes <output-dir>/runs/<run_id>.json: the fully resolved configuration and the
environment (GPU, driver, CUDA, cuDNN, library versions, CPU, threads, and through the
optional nvidia-ml-py the clocks, power limit and other processes on the GPU).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import secrets
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import torch

from bertbench import __version__
from bertbench.spec.config import RunConfig
from bertbench.store.csvfile import replace_with


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return ""


def new_run_id() -> str:
    """Unique across runs started in the same second, in the same directory or not."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def versions(device: torch.device) -> dict[str, str]:
    """Versions recorded in every row, so a CSV tells what produced it."""
    return {
        "bertbench": __version__,
        "torch": torch.__version__,
        "transformers": package_version("transformers"),
        "flash_attn": package_version("flash_attn") or package_version("flash-attn"),
        "flash_attn_3": package_version("flash_attn_3"),
        "cuda": (torch.version.cuda or "") if device.type == "cuda" else "",
        "git_commit": git_commit(),
    }


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (cuda:{device.index or 0})"
    return f"cpu {platform.machine()} ({torch.get_num_threads()} threads)"


def git_commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_details(device: torch.device) -> dict:
    """The GPU as PyTorch and, where nvidia-ml-py is installed, NVML see it."""
    if device.type != "cuda":
        return {}
    props = torch.cuda.get_device_properties(device)
    details = {
        "name": props.name,
        "capability": f"{props.major}.{props.minor}",
        "memory_gib": round(props.total_memory / 2**30, 1),
        "multiprocessors": props.multi_processor_count,
        "cudnn": torch.backends.cudnn.version(),
    }
    return {**details, **nvml_details(device.index or 0)}


def nvml_details(index: int) -> dict:
    try:
        import pynvml
    except ImportError:
        return {"nvml": "unavailable: nvidia-ml-py is not installed"}
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        others = [p.pid for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle) if p.pid != os.getpid()]
        details = {
            "driver": _text(pynvml.nvmlSystemGetDriverVersion()),
            "sm_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "max_sm_clock_mhz": pynvml.nvmlDeviceGetMaxClockInfo(handle, pynvml.NVML_CLOCK_SM),
            "memory_clock_mhz": pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
            "power_limit_w": pynvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000,
            "temperature_c": pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
            "other_processes": len(others),
        }
        if others:
            details["warning"] = f"{len(others)} other processes use this GPU: timings may be disturbed"
        return details
    except Exception as e:  # NVML present but not answering: say so, measure anyway
        return {"nvml": f"unavailable: {type(e).__name__}: {e}"}


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def manifest(config: RunConfig, run_id: str, peak_tflops: float, world_size: int) -> dict:
    device = config.torch_device
    return {
        "run_id": run_id,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": sys.argv,
        "config": config.as_dict(),
        "world_size": world_size,
        "environment": {
            **versions(device),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu": cpu_model(),
            "torch_threads": torch.get_num_threads(),
            "device": device_name(device),
            "peak_tflops": peak_tflops,
            "gpu": gpu_details(device),
        },
    }


def write_manifest(output_dir: Path, data: dict) -> Path:
    """<output-dir>/runs/<run_id>.json, written whole in one step (csvfile.replace_with)."""
    folder = output_dir / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{data['run_id']}.json"
    replace_with(path, (json.dumps(data, indent=2, default=str) + "\n").encode(), "manifest")
    return path
