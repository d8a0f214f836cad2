"""Maps as numpy, Arrow and polars arrays (the optional ``arrays`` extra: ``pip install 'bpfschema[arrays]'``).

This layer sits above :mod:`bpfschema.maps` and :mod:`bpfschema.layout`: the maps hand it the bytes the kernel
wrote, it views them as numpy structured arrays (dtypes from :func:`numpy_dtype`) and converts those to Arrow
tables and polars data frames. numpy, pyarrow and polars are imported at first use; when one is missing the call
raises :class:`~bpfschema.errors.MissingExtraError` naming the extra.
"""

from bpfschema.arrays._bits import bitfield, bitfields
from bpfschema.arrays._build import register as _register
from bpfschema.layout._numpy import numpy_dtype
from bpfschema.maps.drain import Arrays

__all__ = ["Arrays", "bitfield", "bitfields", "numpy_dtype"]

_register()
