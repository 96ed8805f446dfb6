"""tilelang.contrib.nvcc: what TileLang's example scripts ask of it — the compute capability of
the target or of the device, and the capability predicates derived from it. (TileLang's own
`compile_cuda` runs nvcc; tilewise compiles CUDA with NVRTC and does not offer it.)"""
from __future__ import annotations


def _arch_of(target) -> str | None:
    """The sm_XY string of a target (a string such as "cuda -arch=sm_90a", or a dict
    {"kind": "cuda", "arch": "sm_90"}), or None if it names none."""
    if target is None:
        return None
    if isinstance(target, dict):
        return target.get("arch")
    arch = getattr(target, "arch", None)
    if arch:
        return str(arch)
    text = str(target)
    for part in text.replace("=", " ").split():
        if part.startswith("sm_"):
            return part
    return None


def get_target_compute_version(target=None) -> str:
    """The compute capability "major.minor" of `target`'s arch, else of CUDA device 0. Without
    either: ValueError, as TileLang's."""
    arch = _arch_of(target)
    if arch:
        digits = arch.split("_", 1)[1].rstrip("af")
        if len(digits) not in (2, 3) or not digits.isdigit():
            raise ValueError(f"Unsupported arch: {arch}")
        return f"{digits[:-1]}.{digits[-1]}"
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None and torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        return f"{major}.{minor}"
    raise ValueError("No CUDA architecture was specified or GPU detected. Specify it with a target such as "
                     "\"cuda -arch=sm_90a\" or {'kind': 'cuda', 'arch': 'sm_90'}.")


def parse_compute_version(compute_version: str) -> tuple[int, int]:
    """"8.6" -> (8, 6); RuntimeError for anything else (TileLang's message)."""
    try:
        major, minor = str(compute_version).split(".")[:2]
        return int(major), int(minor)
    except ValueError as err:
        raise RuntimeError("Compute version parsing error") from err


def get_target_arch(compute_version) -> str:
    """The arch suffix ("80", "90a": from sm_90 on the architecture-specific form)."""
    major, minor = parse_compute_version(compute_version) if isinstance(compute_version, str) else compute_version
    return f"{major * 10 + minor}" + ("a" if major >= 9 else "")


def _at_least(compute_version, major: int, minor: int = 0) -> bool:
    return parse_compute_version(compute_version) >= (major, minor)


def have_fp16(compute_version) -> bool:
    return _at_least(compute_version, 5, 3)


def have_int8(compute_version) -> bool:
    return _at_least(compute_version, 6, 1)


def have_bf16(compute_version) -> bool:
    return _at_least(compute_version, 8)


def have_fp8(compute_version) -> bool:
    return _at_least(compute_version, 8, 9)


def have_tensorcore(compute_version=None, target=None) -> bool:
    version = compute_version or get_target_compute_version(target)
    return _at_least(version, 7)


def is_hopper(target=None) -> bool:
    return parse_compute_version(get_target_compute_version(target))[0] == 9


def have_tma(target=None) -> bool:
    return _at_least(get_target_compute_version(target), 9)
