"""Pydantic schemas with C layouts: the :class:`Struct` base class and field types.

```python
from typing import Annotated
import bpfschema.schema as bs

class FlowKey(bs.Struct):
    saddr: bs.IPv4
    daddr: bs.IPv4
    sport: bs.be16
    dport: bs.be16
    proto: bs.u8
```
"""

from bpfschema.layout import Align
from bpfschema.schema._aggregate import sum_cpus
from bpfschema.schema._fields import (
    MAC,
    Array,
    Bits,
    Bytes,
    CString,
    FieldType,
    Flex,
    IPv4,
    IPv6,
    Padding,
    be16,
    be32,
    be64,
    bool8,
    construct_field,
    f32,
    f64,
    field_type,
    s8,
    s16,
    s32,
    s64,
    u8,
    u16,
    u32,
    u64,
)
from bpfschema.schema._struct import Anonymous, CName, Struct
from bpfschema.schema._union import Union

__all__ = [
    "Align",
    "Anonymous",
    "Array",
    "Bits",
    "Bytes",
    "CName",
    "CString",
    "FieldType",
    "Flex",
    "IPv4",
    "IPv6",
    "MAC",
    "Padding",
    "Struct",
    "Union",
    "be16",
    "be32",
    "be64",
    "bool8",
    "construct_field",
    "f32",
    "f64",
    "field_type",
    "s16",
    "s32",
    "s64",
    "s8",
    "sum_cpus",
    "u16",
    "u32",
    "u64",
    "u8",
]
