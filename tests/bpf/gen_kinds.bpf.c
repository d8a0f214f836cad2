// SPDX-License-Identifier: GPL-2.0
// Fixture for tests/codegen/test_gen_objects.py and tests/kernel/test_gen_objects_kernel.py: map kinds
// bpfschema has no class for, maps declared by size only, a ring buffer whose event type no map names, C enum
// fields, char/byte/signed arrays and big-endian typedefs. A SYSCALL program writes what its context says.
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

enum state { IDLE = 0, BUSY = 1, DONE = 7 };
typedef __be16 port_t;

struct event {
	__u32 pid;
	enum state state;
	enum state history[3];
	char comm[8];
	unsigned char raw[4];
	__u8 mac[6];
	signed char deltas[2];
	port_t sport;
	__be32 daddr;
	__u64 ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cgroups SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} jumps SEC(".maps");

struct inner_map {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} inner1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__array(values, struct inner_map);
} outer SEC(".maps") = { .values = { &inner1 } };

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__uint(key_size, 6);
	__uint(value_size, 10);
} untyped SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} rb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct event);
} last SEC(".maps");

SEC("syscall")
int emit(struct event *ctx)
{
	struct event e;
	__u8 key[6] = {1, 2, 3, 4, 5, 6};
	__u8 val[10] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0};
	__u32 pid = ctx->pid;

	__builtin_memcpy(&e, ctx, sizeof(e));
	if (bpf_ringbuf_output(&rb, &e, sizeof(e), 0))
		return 1;
	if (bpf_map_update_elem(&last, &pid, &e, BPF_ANY))
		return 2;
	if (bpf_map_update_elem(&untyped, key, val, BPF_ANY))
		return 3;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
