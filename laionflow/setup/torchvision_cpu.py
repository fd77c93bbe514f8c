"""Make PyPI's CUDA build of torchvision importable next to a CPU-only torch.

torchvision's ``_C.so``/``image.so`` link against ``libc10_cuda.so``, ``libtorch_cuda.so`` (and
``libcudart``), which a CPU torch does not ship, so ``import torchvision`` dies with
``operator torchvision::nms does not exist``. We compile tiny stub libraries carrying those
sonames — ``c10::cuda::device_count()`` answers 0, CUDA fat-binary registration is a no-op and
every other CUDA entry point throws — and a ``.pth`` import hook dlopens them RTLD_GLOBAL just
before torchvision loads, only when ``torch.version.cuda is None``. With a CUDA torch (the GPU
machine) nothing is built or loaded. Run: ``python -m laionflow.setup.torchvision_cpu``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import sysconfig
from pathlib import Path

STUB_DIR = "_laionflow_cuda_stubs"
HOOK = "_laionflow_tvfix"
CUDA_SYMBOL = re.compile(r"(cuda|nvjpeg)", re.IGNORECASE)
NOOP = {
    "__cudaRegisterFatBinaryEnd",
    "__cudaRegisterFunction",
    "__cudaRegisterVar",
    "__cudaUnregisterFatBinary",
}

HOOK_SOURCE = f'''"""Installed by laionflow: load CUDA stubs before torchvision on a CPU torch."""
import os
import sys


class _TorchvisionCpuFix:
    def find_spec(self, name, path=None, target=None):
        if name != "torchvision":
            return None
        sys.meta_path.remove(self)
        stubs = os.path.join(os.path.dirname(__file__), "{STUB_DIR}")
        try:
            import torch

            if torch.version.cuda is None and os.path.isdir(stubs):
                import ctypes

                for lib in sorted(f for f in os.listdir(stubs) if ".so" in f):
                    ctypes.CDLL(os.path.join(stubs, lib), mode=ctypes.RTLD_GLOBAL)
        except ImportError:
            pass
        return None


sys.meta_path.insert(0, _TorchvisionCpuFix())
'''


def _run(*cmd: str, **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


def _missing(so: Path, torch_lib: Path) -> tuple[set[str], set[str]]:
    """(missing sonames, undefined CUDA symbols) of one extension module."""
    env = {"LD_LIBRARY_PATH": str(torch_lib)}
    libs = {
        line.split()[0]
        for line in _run("ldd", str(so), env=env).splitlines()
        if "not found" in line
    }
    syms = set()
    for line in _run("nm", "-D", "--undefined-only", str(so)).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U" and CUDA_SYMBOL.search(parts[1]):
            syms.add(parts[1].split("@")[0])
    return libs, syms


def _cpp(symbols: set[str]) -> str:
    out = [
        "#include <stdexcept>",
        "#include <string>",
        "[[noreturn]] static void lf_fail(const char* s) {",
        '  throw std::runtime_error(std::string("CUDA is not available with this CPU-only '
        'torch (called ") + s + ")"); }',
        "static char lf_handle[64];",
    ]
    for i, sym in enumerate(sorted(symbols)):
        if sym == "_ZN3c104cuda12device_countEv":
            out.append(f'extern "C" signed char s{i}() __asm__("{sym}");')
            out.append(f"signed char s{i}() {{ return 0; }}")
        elif sym == "__cudaRegisterFatBinary":
            out.append(f'extern "C" void* s{i}(void*) __asm__("{sym}");')
            out.append(f"void* s{i}(void*) {{ return lf_handle; }}")
        elif sym == "__cudaInitModule":
            out.append(
                f'extern "C" char s{i}(void*) __asm__("{sym}"); char s{i}(void*) {{ return 0; }}'
            )
        elif sym in NOOP:
            out.append(f'extern "C" void s{i}() __asm__("{sym}"); void s{i}() {{}}')
        elif sym.startswith("_ZN") and sym.endswith("E"):  # a data object, not a function
            out.append(f'extern "C" {{ char s{i}[64] __asm__("{sym}") = {{0}}; }}')
        else:
            out.append(
                f'extern "C" void s{i}() __asm__("{sym}"); void s{i}() {{ lf_fail("{sym}"); }}'
            )
    return "\n".join(out) + "\n"


def install(site_packages: Path | None = None) -> str:
    import torch  # noqa: F401  (a CPU or CUDA torch must already be installed)

    site = Path(site_packages or sysconfig.get_paths()["purelib"])
    if torch.version.cuda is not None:
        return "CUDA torch: nothing to do"
    tv = site / "torchvision"
    torch_lib = site / "torch" / "lib"
    sonames, symbols = set(), set()
    for so in sorted(tv.glob("*.so")):
        libs, syms = _missing(so, torch_lib)
        sonames |= libs
        symbols |= syms
    stub_dir = site / STUB_DIR
    stub_dir.mkdir(exist_ok=True)
    src = stub_dir / "stubs.cpp"
    src.write_text(_cpp(symbols))
    for n, soname in enumerate(sorted(sonames)):
        # the first library carries every symbol; the others only answer to their soname
        args = [str(src)] if n == 0 else ["-x", "c++", "/dev/null"]
        _run(
            "g++",
            "-shared",
            "-fPIC",
            "-O1",
            f"-Wl,-soname,{soname}",
            "-o",
            str(stub_dir / f"{n:02d}-{soname}"),
            *args,
        )
    (site / f"{HOOK}.py").write_text(HOOK_SOURCE)
    (site / f"{HOOK}.pth").write_text(f"import {HOOK}\n")
    return f"stubbed {sorted(sonames)} with {len(symbols)} symbols in {stub_dir}"


if __name__ == "__main__":
    print(install(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
