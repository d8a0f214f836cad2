// SPDX-License-Identifier: GPL-2.0
// Counts process execs by child pid, CO-RE: only children of .rodata filter_ppid are counted.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 filter_ppid = 0; /* .rodata: the parent whose children count (0: every process) */
const volatile __u8 weight = 1;       /* .rodata: added per exec to the .bss total */

__u64 total = 0;      /* .bss */
__u32 last_pid = 0;   /* .bss */
__s32 generation = 7; /* .data */

struct exec_stat {
	__u64 count;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct exec_stat);
} exec_counts SEC(".maps");

SEC("tracepoint/sched/sched_process_exec")
int on_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 ppid = BPF_CORE_READ(task, real_parent, tgid);
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	struct exec_stat zero = {}, *st;

	if (filter_ppid && ppid != filter_ppid)
		return 0;
	bpf_map_update_elem(&exec_counts, &pid, &zero, BPF_NOEXIST);
	st = bpf_map_lookup_elem(&exec_counts, &pid);
	if (!st)
		return 0;
	__sync_fetch_and_add(&st->count, 1);
	bpf_get_current_comm(st->comm, sizeof(st->comm));
	__sync_fetch_and_add(&total, weight);
	last_pid = pid;
	return 0;
}
