// SPDX-License-Identifier: GPL-2.0
// Fixture for tests/codegen/test_gen_objects.py and tests/kernel/test_gen_objects_kernel.py: a program whose
// state is only in global variables (.bss, .data, .rodata), no maps. The SYSCALL program sets them from its
// context.
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct config {
	__u32 pid;
	char comm[16];
};

const volatile __u32 target_pid = 42;
const volatile struct config cfg = { .pid = 7, .comm = "init" };
__u64 counter;
__u64 hist[8];
static __u32 calls;
__u32 threshold = 5;
char tag[10] = "hello";
__u16 port = 80;

struct args {
	__u64 counter;
	__u32 slot;
	__u32 value;
};

SEC("syscall")
int set(struct args *ctx)
{
	__u32 slot = ctx->slot;

	counter = ctx->counter;
	calls++;
	if (slot < 8)
		hist[slot] = ctx->value + target_pid + cfg.pid;
	threshold = ctx->value;
	tag[0] = 'j';
	port = 8080;
	return calls;
}

char LICENSE[] SEC("license") = "GPL";
