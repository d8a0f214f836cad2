"""An IPv4 allow-list matched by longest prefix."""

from __future__ import annotations

import bpfschema as bs


class Ipv4Prefix(bs.Struct):
    prefixlen: bs.u32  # bpf_lpm_trie_key: host-order prefix length first
    addr: bs.IPv4


class Verdict(bs.Struct):
    allow: bs.bool8
    rule_id: bs.u16


allow = bs.MapSpec(name="allow", type=bs.MapType.LPM_TRIE, key=Ipv4Prefix, value=Verdict, max_entries=1024)
