// SPDX-License-Identifier: GPL-2.0
// Fixture for tests/codegen/test_gen_objects.py: C names that are awkward in Python. Members named like Python
// keywords, tuple methods, pydantic's and bpfschema's attributes, builtins, names differing only by leading
// underscores; enumerators named like enum attributes; maps whose generated class names coincide.
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

enum state { mro = 1, name = 2, value = 3, _missing_ = 4 };

struct awkward {
	__u32 count;
	__u32 index;
	__u32 from;
	__u32 lambda;
	__u64 bytes;
	__u8 mac[6];
	__u16 _x;
	__u16 x;
	__u16 __x;
	__u32 model_dump;
	__u32 model_config;
	__u32 copy;
	__u32 json;
	__u32 to_bytes;
	__u32 layout;
	__u32 Record;
	__u32 int_;
	enum state state;
	char str[6];
};

struct flows_map {
	__u32 a;
	__u32 b;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct awkward);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct flows_map);
} __flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} flows_record SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} bytes SEC(".maps");

SEC("syscall")
int touch(void *ctx)
{
	__u32 k = 0;
	struct awkward *a = bpf_map_lookup_elem(&flows, &k);
	struct flows_map *f = bpf_map_lookup_elem(&__flows, &k);
	__u64 *r = bpf_map_lookup_elem(&flows_record, &k);
	__u64 *b = bpf_map_lookup_elem(&bytes, &k);

	return (a ? a->count : 0) + (f ? f->a : 0) + (r ? *r : 0) + (b ? *b : 0);
}

char LICENSE[] SEC("license") = "GPL";
