"""Property tests on random schemas: round trips, every codec form agrees, random bytes never crash."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import bpfschema.schema as bs
from bpfschema.errors import LayoutError
from bpfschema.layout import codec_for, raw_codec, record_codec
from bpfschema.layout._slow import slow_decode, slow_encode
from tests.unit.schemagen import as_record_tree, column_rows, from_container, instances, same, structs

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@SETTINGS
@given(st.data())
def test_round_trip_and_codec_forms_agree(data: st.DataObject) -> None:
    cls = data.draw(structs())
    value: Any = data.draw(instances(cls))
    raw = value.to_bytes()
    assert len(raw) == cls.layout.size
    back = cls.from_bytes(raw)
    assert back == value
    assert back.to_bytes() == raw
    assert hash(back) == hash(value)

    # every codec form decodes the same bytes to the same values
    tree = as_record_tree(value)
    record = record_codec(cls).decode(raw)
    assert isinstance(record, cls.Record)
    assert same(as_record_tree(record), tree)
    assert record_codec(cls).encode(record) == raw
    flat = raw_codec(cls).decode(raw)
    assert raw_codec(cls).encode(flat) == raw
    assert same(from_container(cls.layout.construct.parse(raw)), tree)
    assert cls.layout.construct.build(cls.layout.construct.parse(raw)) == raw
    assert slow_decode(cls.__bpf_ctype__, raw, "model") == value
    assert slow_encode(cls.__bpf_ctype__, value, "model") == raw

    # batches, contiguous and strided (per-CPU values are padded to 8 bytes)
    n = data.draw(st.integers(1, 5))
    for codec in (codec_for(cls), record_codec(cls), raw_codec(cls)):
        single = codec.decode(raw)
        size = codec.size
        stride = data.draw(st.sampled_from([size, (size + 7) // 8 * 8, size + 3]))
        gap = b"\xaa" * (stride - size)
        assert codec.decode_many((raw + gap) * n, n, stride) == [single] * n
        assert codec.decode_many(((raw + gap) * n)[: (n - 1) * stride + size], n, stride) == [single] * n


@SETTINGS
@given(st.data())
def test_random_bytes_decode_or_raise_layout_error(data: st.DataObject) -> None:
    cls: type[bs.Struct] = data.draw(structs())
    raw = data.draw(st.binary(min_size=cls.layout.size, max_size=cls.layout.size))
    try:
        value = cls.from_bytes(raw)
    except LayoutError as exc:
        assert exc.op == "decode"
        assert exc.path  # a field is named
        for codec in (record_codec(cls),):
            try:
                codec.decode(raw)
            except LayoutError as exc2:
                assert exc2.path == exc.path
            else:
                raise AssertionError("record decode accepted bytes the model decode rejected")
        return
    # the same bytes through the other forms give the same values
    assert same(as_record_tree(record_codec(cls).decode(raw)), as_record_tree(value))
    assert codec_for(cls).decode_many(raw * 3, 3, cls.layout.size) == [value] * 3 or _has_nan(value)
    flat = raw_codec(cls).decode(raw)
    assert same(raw_codec(cls).decode(raw_codec(cls).encode(flat)), flat)  # bools normalise to 0/1
    # re-encoding normalises (zero padding, text cut at NUL) or names the field it cannot encode
    try:
        again = value.to_bytes()
    except LayoutError as exc:
        assert exc.op == "encode" and exc.path
    else:
        assert same(as_record_tree(cls.from_bytes(again)), as_record_tree(value))
    # validation of the decoded values either accepts them unchanged or raises ValidationError
    try:
        validated = cls.model_validate(value.model_dump())
    except ValidationError:
        pass
    else:
        assert same(as_record_tree(validated), as_record_tree(value))


def _has_nan(value: object) -> bool:
    return "nan" in repr(value)


def _has_bitfields(t: object) -> bool:
    from bpfschema.layout import BitfieldsType, StructType

    return isinstance(t, StructType) and any(isinstance(fl.ctype, BitfieldsType) for fl in t.layout.fields)


@SETTINGS
@given(st.data())
def test_columns_equal_the_fields_of_the_decoded_entries_without_decoding_whole_entries(data: st.DataObject) -> None:
    cls = data.draw(structs())
    values: list[Any] = [data.draw(instances(cls)) for _ in range(data.draw(st.integers(1, 4)))]
    size = cls.layout.size
    stride = data.draw(st.sampled_from([size, (size + 7) // 8 * 8, size + 3]))
    gap = b"\x5a" * (stride - size)
    buf = b"".join(v.to_bytes() + gap for v in values)[: (len(values) - 1) * stride + size]
    for make in (codec_for, record_codec):
        codec: Any = make(cls)
        entries = codec.decode_many(buf, len(values), stride)
        cc = codec._columns_codec()
        if not _has_bitfields(cls.__bpf_ctype__):
            def refuse(*a: object) -> list[Any]:
                raise AssertionError("columns decoded whole entries")

            cc._fallback = refuse
        cols = codec.decode_columns(buf, len(values), stride)
        assert codec.column_names == tuple(cc.names)
        for name, col in zip(codec.column_names, cols, strict=True):
            expected = tuple(as_record_tree(getattr(e, name)) for e in entries)
            assert same(as_record_tree(tuple(column_rows(col, len(entries)))), expected), name
            if isinstance(col, tuple):
                assert isinstance(getattr(entries[0], name), bs.Struct | tuple)  # only structs give columns
