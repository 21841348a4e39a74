"""The C extension only; everything else about the package is in pyproject.toml."""

from setuptools import Extension, setup

setup(ext_modules=[
    # optional: without a C compiler the install still succeeds and stream_scorer.core.window uses its Python
    # definition (~10x slower per card window; `stream-scorer` logs which one runs)
    Extension("stream_scorer.core._window", ["stream_scorer/core/_window.c"], optional=True,
              depends=["stream_scorer/core/_pyfloat.h"], extra_compile_args=["-O2"]),
    # the same for the fraud decisions (stream_scorer.core.fraud_decisions)
    Extension("stream_scorer.core._decide", ["stream_scorer/core/_decide.c"], optional=True,
              depends=["stream_scorer/core/_pyfloat.h"], extra_compile_args=["-O2"]),
])
