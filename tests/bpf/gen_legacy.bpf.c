// SPDX-License-Identifier: GPL-2.0
// Fixture for tests/codegen/test_gen_objects.py: a map defined the pre-BTF-macro way (its type in the ELF data,
// not in BTF) that libbpf 1.x refuses to open, beside a typed one. gen --from-object writes the typed map's classes
// and says in a comment why there is no skeleton, instead of failing.
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct stats {
	__u64 packets;
	__u64 bytes;
};

struct {
	__u32 type;
	__u32 max_entries;
	__u32 *key;
	struct stats *value;
} legacy SEC(".maps") = {
	.type = BPF_MAP_TYPE_HASH,
	.max_entries = 16,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct stats);
} typed SEC(".maps");

SEC("syscall")
int touch(void *ctx)
{
	__u32 k = 0;
	struct stats *s = bpf_map_lookup_elem(&typed, &k);

	if (s)
		s->packets++;
	return 0;
}

char _license[] SEC("license") = "GPL";
