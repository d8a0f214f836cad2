// SPDX-License-Identifier: GPL-2.0
// Fixture for tests/kernel/test_btf.py: maps whose BTF covers nested structs, unions, enums, bitfields,
// char arrays, per-CPU values and a queue. A SYSCALL program copies bytes the test chooses (ctx_in) into them; the
// queue gets them from a socket filter (data_in): before Linux 6.9 a sleepable program may not use a queue.
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

enum color { RED = 1, GREEN = 2, BLUE = 200 };
enum level { LOW = -1, MID = 0, HIGH = 1 };

struct inner {
	__u16 a;
	__s8 b;
	__u64 c;
};

struct bits {
	__u32 lo : 3;
	__u32 mid : 12;
	__s32 neg : 5;
	__u8 tail;
	__u64 wide : 40;
	enum color tint : 8;
};

union num {
	__u32 u;
	__s16 halves[2];
	__u8 bytes[4];
};

typedef const volatile struct inner inner_t;

struct value {
	__u32 id;
	enum color color;
	enum level level;
	char name[16];
	struct inner inner;
	inner_t pair[2];
	union num num;
	struct bits bits;
	__be16 port;
	_Bool ok;
	__u64 ratio_bits; /* bpftool 7.1 prints FLOAT members as "(unsupported-kind", breaking its JSON */
	union {
		__u64 both;
		struct {
			__u32 x;
			__u32 y;
		};
	};
	__u32 hist[4];
	__u8 mac[6];
	__s64 delta;
};

struct key {
	__u32 pid;
	char comm[8];
};

struct event {
	__u64 seq;
	struct inner where;
	char tag[5];
	float load;
	enum color color;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, struct key);
	__type(value, struct value);
} values SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct bits);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct inner);
} percpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, union num);
} percpu_arr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 16);
	__type(value, struct event);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} ring SEC(".maps");

/* What the test passes in ctx_in: which map to write and the bytes to write. */
struct args {
	__u32 which;
	__u32 index;
	struct key key;
	struct value value;
	struct bits bits;
	struct inner inner;
	union num num;
	struct event event;
};

SEC("syscall")
int fill(struct args *ctx)
{
	/* Map helpers take stack (not ctx) pointers: copy each piece first. */
	__u32 index = ctx->index;

	switch (ctx->which) {
	case 0: {
		struct key k = ctx->key;
		struct value v = ctx->value;
		return bpf_map_update_elem(&values, &k, &v, BPF_ANY);
	}
	case 1: {
		struct bits b = ctx->bits;
		return bpf_map_update_elem(&slots, &index, &b, BPF_ANY);
	}
	case 2: {
		struct inner in = ctx->inner;
		return bpf_map_update_elem(&percpu, &index, &in, BPF_ANY);
	}
	case 3: {
		union num n = ctx->num;
		return bpf_map_update_elem(&percpu_arr, &index, &n, BPF_ANY);
	}
	default:
		return -1;
	}
}

SEC("socket")
int push_event(struct __sk_buff *skb)
{
	struct event e;

	if (bpf_skb_load_bytes(skb, 0, &e, sizeof(e)))
		return -1;
	return bpf_map_push_elem(&events, &e, BPF_ANY);
}

char LICENSE[] SEC("license") = "GPL";
