"""The compiled loop of sce check --arrays (sce/grading/dump/ulp_kernel.py); everything else is in
pyproject.toml.

Optional: where no C compiler is at hand the install goes on, and numpy grades the same numbers,
twice as slowly. The loop must round as numpy does whatever CFLAGS say (these flags come after
them): no multiply and add fused into one rounding, none of fast-math's liberties, and at link time
none of -Ofast's crtfastmath.o, which would flush subnormal numbers to zero in the whole process
once loaded. The library carries its source's digest, and is loaded only where the source beside
the Python code has the same one: a library built from another version is never used.
"""

from hashlib import sha256
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SOURCE = "sce/grading/dump/_ulp_errors.c"


class FreshBuild(build_ext):
    """Compiled afresh at every install: a build/ folder left in the tree by an earlier one (another
    version, CC or CFLAGS) would otherwise be taken as up to date."""

    def initialize_options(self) -> None:
        super().initialize_options()
        self.force = True


loop = Extension(
    "sce.grading.dump._ulp_errors",
    sources=[SOURCE],
    define_macros=[("SOURCE_DIGEST", '"' + sha256(Path(SOURCE).read_bytes()).hexdigest() + '"')],
    extra_compile_args=[
        "-O3",
        "-ffp-contract=off",
        "-fno-fast-math",
        "-fno-unsafe-math-optimizations",
        "-fno-finite-math-only",
        "-fno-reciprocal-math",
        "-fno-associative-math",
        "-fsigned-zeros",
    ],
    extra_link_args=["-O3", "-fno-fast-math", "-fno-unsafe-math-optimizations"],
    optional=True,
)

setup(ext_modules=[loop], cmdclass={"build_ext": FreshBuild})
