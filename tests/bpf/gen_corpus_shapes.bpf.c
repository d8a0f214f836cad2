// SPDX-License-Identifier: GPL-2.0
// Fixture for tests/codegen/test_gen_objects.py (and a seed of tests/unit/test_btf_fuzz.py): shapes of the Linux
// BPF selftests (tools/testing/selftests/bpf/progs) that `gen --from-object` got wrong, written here from scratch:
// map flags bpfschema had no name for (BPF_F_INNER_MAP on inner map templates and maps of maps,
// BPF_F_PRESERVE_ELEMS on a perf event array), and members whose C names Python cannot keep (`__opaque` as in
// struct bpf_timer, a `__reserved` bitfield as in libbpf's usdt.bpf.h, `class`, `__pad` in a union), globals named
// like Python builtins (strncmp_test's `str`), a function's static variable (BTF names it `touch.calls`), and the
// BTF kinds those programs are full of: a struct bpf_spin_lock in a value, type and declaration tags.
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct opaque_timer {
	__u64 __opaque[2];
};

struct spec_arg {
	__u64 val_off;
	__u32 arg_type;
	short reg_off;
	_Bool arg_signed;
	char __reserved : 8;
	char class : 8;
};

union slot {
	__u32 __pad[2];
	__u64 word;
};

struct value {
	struct opaque_timer t;
	struct spec_arg args[2];
	union slot slot;
	__u32 __count;
};

#define __tag(x) __attribute__((btf_type_tag(x)))
#define __decl(x) __attribute__((btf_decl_tag(x)))

struct locked {
	struct bpf_spin_lock lock;
	__u64 hits __decl("counter");
};

struct tagged {
	int __tag("user") *uptr;
	__u32 v __decl("field");
};

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_INNER_MAP);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u32);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { &inner_a, &inner_b },
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(map_flags, BPF_F_PRESERVE_ELEMS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, struct value);
} values SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, struct locked);
} locks SEC(".maps");

char str[8];
__u32 tuple = 1;

static __attribute__((noinline)) int read_tagged(struct tagged *t __decl("arg"))
{
	return t ? t->v : 0;
}

SEC("syscall")
int touch(void *ctx)
{
	static __u32 calls;
	__u32 k = 0;
	struct value *v = bpf_map_lookup_elem(&values, &k);

	calls++;
	return (v ? v->__count : 0) + read_tagged(ctx) + calls;
}

char LICENSE[] SEC("license") = "GPL";
