"""The precision a run actually computes in.

`train.amp` is the recipe's intent (mixed precision on); whether autocast pays off depends on the device. On a
CPU without native bfloat16 (no AVX512_BF16, no AMX: most laptops and many servers, AVX2 only) ResNet-50's
forward and backward run 5-7x slower in bfloat16 autocast than in float32, so there the run uses float32 and
says why. `train.amp_fallback=keep` keeps autocast anyway (to compare, or where detection is wrong).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Precision:
    dtype: torch.dtype | None      # autocast dtype; None = plain float32
    reason: str                    # one sentence: what runs and why

    @property
    def name(self) -> str:
        return _name(self.dtype) if self.dtype is not None else "float32"

    @property
    def needs_scaler(self) -> bool:
        """float16 gradients underflow without loss scaling; bfloat16 has float32's range."""
        return self.dtype == torch.float16


def cpu_capability() -> str:
    return torch.backends.cpu.get_cpu_capability()


def cpu_native_features() -> list[str]:
    """The CPU features that compute reduced precision natively (x86: AVX512_BF16, AMX tiles, AMX-FP16), as far as
    torch uses them: none where torch runs its AVX2 kernels on such a CPU (ATEN_CPU_CAPABILITY=avx2), where bf16
    autocast measured 6x slower than float32 (benchmarks/RESULTS.md, "The sample command")."""
    if cpu_capability() != "AVX512":
        return []
    found = []
    if torch.cpu._is_avx512_bf16_supported():
        found.append("AVX512_BF16")
    if torch.cpu._is_amx_tile_supported():
        found.append("AMX")
    if torch.cpu._is_amx_fp16_supported():
        found.append("AMX_FP16")
    return found


def _cpu_native(dtype: torch.dtype) -> tuple[bool, str]:
    features = cpu_native_features()
    wanted = {torch.bfloat16: ("AVX512_BF16", "AMX"), torch.float16: ("AMX_FP16",)}[dtype]
    have = [f for f in features if f in wanted]
    what = f"CPU capability {cpu_capability()}"
    if have:
        return True, f"the CPU computes {_name(dtype)} natively ({', '.join(have)}; {what})"
    return False, f"this CPU has no native {_name(dtype)} ({' or '.join(wanted)}; {what})"


def _cuda_native(dtype: torch.dtype, device: torch.device) -> tuple[bool, str]:
    gpu = torch.cuda.get_device_name(device)
    if dtype == torch.float16:
        return True, f"{gpu} computes float16 natively"
    if torch.cuda.is_bf16_supported(including_emulation=False):
        return True, f"{gpu} computes bfloat16 natively"
    return False, f"{gpu} has no native bfloat16 (set train.amp_dtype=float16 for float16 autocast)"


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def choose(amp: bool, amp_dtype: str, device: torch.device, fallback: str = "float32") -> Precision:
    """Autocast in `amp_dtype` where `device` computes it natively; elsewhere float32, unless fallback='keep'."""
    if not amp:
        return Precision(None, "float32: train.amp is false")
    dtype = DTYPES[amp_dtype]
    native, why = _cuda_native(dtype, device) if device.type == "cuda" else _cpu_native(dtype)
    if native:
        return Precision(dtype, f"{_name(dtype)} autocast: {why}")
    if fallback == "keep":
        return Precision(dtype, f"{_name(dtype)} autocast although {why}; it may run several times slower than "
                                f"float32 (train.amp_fallback=keep)")
    return Precision(None, f"float32 instead of the recipe's {_name(dtype)} autocast: {why}, where autocast "
                           f"runs several times slower than float32 (train.amp_fallback=keep keeps it)")


def for_config(train, device: torch.device | str) -> Precision:
    """The precision of a run with TrainConfig `train` on `device`, or on the device a --device name (auto,
    cpu, cuda, cuda:N) picks, as rsb.runtime.distributed.pick_device picks it, without starting a process group."""
    if isinstance(device, str):
        from rsb.runtime.distributed import pick_device
        device = pick_device(device, 0)
    return choose(train.amp, train.amp_dtype, device, train.amp_fallback)
