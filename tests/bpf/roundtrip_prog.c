// SPDX-License-Identifier: GPL-2.0
// Fixture for tests/kernel/test_roundtrip_btf.py (not *.bpf.c: it needs the header generated at test time): includes the header bpfschema generates from
// tests/kernel/roundtrip_schema.py (written next to this file's copy at test time) and stores what its context
// carries, so that the kernel writes the maps the test then reads through the module generated back from BTF.
#include "roundtrip_maps.h"

struct rt_args {
	struct rt_key key;
	struct rt_value value;
	union rt_addr addr;
	union rt_shape shape;
	__u32 slot;
};

SEC("syscall")
int put(struct rt_args *ctx)
{
	struct rt_key key = ctx->key;
	struct rt_value value = ctx->value;
	union rt_addr addr = ctx->addr;
	union rt_shape shape = ctx->shape;
	__u32 slot = ctx->slot;

	if (bpf_map_update_elem(&rt_flows, &key, &value, BPF_ANY))
		return 1;
	if (bpf_map_update_elem(&rt_slots, &slot, &value, BPF_ANY))
		return 2;
	if (bpf_map_update_elem(&rt_addrs, &addr, &shape, BPF_ANY))
		return 3;
	return 0;
}

char _license[] SEC("license") = "GPL";
