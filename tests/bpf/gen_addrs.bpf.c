// SPDX-License-Identifier: GPL-2.0
// Fixture for tests/codegen/test_gen_objects.py and tests/kernel/test_gen_objects_kernel.py: address idioms.
// Only the uapi address structs are typed as addresses; __be32 / __u8[16] / unions of them stay numbers and
// bytes whatever their names say. Typedef names are kept in the generated comments.
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>

typedef __u32 conn_id_t;

struct conn {
	struct in_addr src;
	struct in6_addr dst6;
	__be32 saddr;
	__u8 saddr_v6[16];
	union {
		__be32 v4;
		__u8 v6[16];
	} peer;
	conn_id_t id;
	__be16 sport;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, conn_id_t);
	__type(value, struct conn);
} conns SEC(".maps");

SEC("syscall")
int put(struct conn *ctx)
{
	struct conn c = *ctx;
	conn_id_t id = c.id;

	return bpf_map_update_elem(&conns, &id, &c, BPF_ANY);
}

char _license[] SEC("license") = "GPL";
