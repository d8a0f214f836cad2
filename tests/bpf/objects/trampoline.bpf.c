// SPDX-License-Identifier: GPL-2.0
// fentry/fexit (BPF trampolines, Linux 5.5+): kept apart from kinds.bpf.c because some kernels (lockdown, no
// direct calls) refuse them, and one refused program fails the whole object.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0;

enum kind { FENTRY, FEXIT };

__u64 hits[2] = {};

static __always_inline void hit(enum kind k)
{
	__sync_fetch_and_add(&hits[k], 1);
}

static __always_inline int mine(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("fentry/do_sys_openat2")
int BPF_PROG(fentry_openat2)
{
	if (mine())
		hit(FENTRY);
	return 0;
}

SEC("fexit/do_sys_openat2")
int BPF_PROG(fexit_openat2)
{
	if (mine())
		hit(FEXIT);
	return 0;
}
