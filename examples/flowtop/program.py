"""The BPF side of flowtop: a socket filter, hand-assembled, that counts UDP datagrams per flow.

For every datagram a socket receives it reads the IPv4 addresses (from the network header) and the UDP ports
(from the UDP header), then either adds to the flow's FlowStats in the LRU hash, or creates it and pushes a
NEW_FLOW FlowEvent to the queue. It returns the datagram's length: the packet is always delivered.
"""

from __future__ import annotations

from bpfschema.testing import Program, ProgType
from bpfschema.testing import asm as a

from . import flows_maps

_SKB_LOAD_BYTES = 26
_SKB_LOAD_BYTES_RELATIVE = 68
_KTIME_GET_NS = 5
_HDR_START_NET = 1
_NOEXIST = 1
_NEW_FLOW = 1

# Stack slots (offsets from the frame pointer): key 16 bytes, value 32, event 32.
_KEY, _VAL, _EV = -16, -48, -80


def build(flows: flows_maps.FlowsMap, events: flows_maps.EventsMap) -> Program:
    """Load the counting program for these two maps.

    Raises:
        VerifierError: the kernel refused the program (with the verifier log).
    """
    fp, r0, r1, r2, r3, r4, r5, r6, r8, r9 = a.FP, a.R0, a.R1, a.R2, a.R3, a.R4, a.R5, a.R6, a.R8, a.R9
    dw, w, b = a.Size.DW, a.Size.W, a.Size.B
    insns: list[a.Item] = [
        a.mov64(r6, r1),
        a.st(dw, fp, _KEY, 0),
        a.st(dw, fp, _KEY + 8, 0),
        # saddr, daddr: 8 bytes at offset 12 of the IPv4 header
        a.mov64(r1, r6), a.mov64(r2, 12), a.mov64(r3, fp), a.alu64(a.Alu.ADD, r3, _KEY), a.mov64(r4, 8),
        a.mov64(r5, _HDR_START_NET), a.call(_SKB_LOAD_BYTES_RELATIVE),
        a.jmp(a.Jmp.JNE, r0, 0, "out"),
        # sport, dport: the first 4 bytes the socket filter sees (the UDP header), kept in network order
        a.mov64(r1, r6), a.mov64(r2, 0), a.mov64(r3, fp), a.alu64(a.Alu.ADD, r3, _KEY + 8), a.mov64(r4, 4),
        a.call(_SKB_LOAD_BYTES),
        a.jmp(a.Jmp.JNE, r0, 0, "out"),
        a.st(b, fp, _KEY + 12, 17),  # proto = UDP
        a.ldx(w, r9, r6, 0),  # skb->len
        a.call(_KTIME_GET_NS),
        a.mov64(r8, r0),
        a.ld_map_fd(r1, flows.fd), a.mov64(r2, fp), a.alu64(a.Alu.ADD, r2, _KEY), a.call(a.Helper.MAP_LOOKUP_ELEM),
        a.jmp(a.Jmp.JEQ, r0, 0, "new"),
        a.mov64(r1, 1),
        a.atomic_add(dw, r0, r1, 0),  # packets += 1
        a.atomic_add(dw, r0, r9, 8),  # bytes += len
        a.stx(dw, r0, r8, 24),  # last_seen_ns
        a.ja("out"),
        a.label("new"),
        a.st(dw, fp, _VAL, 1),
        a.stx(dw, fp, r9, _VAL + 8),
        a.stx(dw, fp, r8, _VAL + 16),
        a.stx(dw, fp, r8, _VAL + 24),
        a.ld_map_fd(r1, flows.fd), a.mov64(r2, fp), a.alu64(a.Alu.ADD, r2, _KEY),
        a.mov64(r3, fp), a.alu64(a.Alu.ADD, r3, _VAL), a.mov64(r4, _NOEXIST), a.call(a.Helper.MAP_UPDATE_ELEM),
        a.jmp(a.Jmp.JNE, r0, 0, "out"),  # another CPU created it first: its count goes on from there
        a.st(w, fp, _EV, _NEW_FLOW),
        a.stx(w, fp, r9, _EV + 4),
        a.stx(dw, fp, r8, _EV + 8),
        a.ldx(dw, r1, fp, _KEY), a.stx(dw, fp, r1, _EV + 16),
        a.ldx(dw, r1, fp, _KEY + 8), a.stx(dw, fp, r1, _EV + 24),
        a.ld_map_fd(r1, events.fd), a.mov64(r2, fp), a.alu64(a.Alu.ADD, r2, _EV), a.mov64(r3, 0),
        a.call(a.Helper.MAP_PUSH_ELEM),
        a.label("out"),
        a.ldx(w, r0, r6, 0),  # keep the whole datagram
        a.exit_(),
    ]
    return Program.load(ProgType.SOCKET_FILTER, insns, name="flowtop")
