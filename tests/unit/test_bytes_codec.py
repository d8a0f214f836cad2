"""BytesCodec.decode_many (the identity codec's batch split) against plain slicing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpfschema.errors import LayoutError
from bpfschema.maps.codec import BytesCodec


@given(size=st.integers(0, 40), pad=st.integers(0, 9), count=st.integers(0, 70), data=st.data())
def test_decode_many_equals_slicing(size: int, pad: int, count: int, data: st.DataObject) -> None:
    stride = size + pad
    buf = data.draw(st.binary(min_size=count * stride, max_size=count * stride + 5))
    want = [buf[i * stride : i * stride + size] for i in range(count)]
    codec = BytesCodec(size)
    for form in (buf, bytearray(buf), memoryview(buf)):
        got = codec.decode_many(form, count, stride)
        assert got == want
        assert all(type(x) is bytes for x in got)


def test_last_item_needs_no_trailing_padding() -> None:
    # 3 items of 2 bytes every 4 bytes: the buffer may end right after the last item.
    assert BytesCodec(2).decode_many(b"ab..cd..ef", 3, 4) == [b"ab", b"cd", b"ef"]


def test_short_buffer_and_bad_stride_raise_layout_error() -> None:
    with pytest.raises(LayoutError, match="need 10 bytes, got 9"):
        BytesCodec(2).decode_many(b"ab..cd..e", 3, 4)
    with pytest.raises(LayoutError, match="stride 3 is smaller"):
        BytesCodec(4).decode_many(b"x" * 12, 3, 3)
