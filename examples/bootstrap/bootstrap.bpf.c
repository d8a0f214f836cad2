// SPDX-License-Identifier: GPL-2.0
// bootstrap: a process's exec and exit as events on a ring buffer, exits filtered by a minimum lifetime set
// from Python in .rodata. The event struct and both maps come from schema.py (bootstrap.h, generated).
#include "vmlinux.h"
#define _LINUX_TYPES_H  /* vmlinux.h already declares the kernel's types: skip the uapi headers */
#define __LINUX_BPF_H__ /* that the generated header includes */
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "bootstrap.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u64 min_duration_ns = 0; /* .rodata: exits of shorter-lived processes are not reported */

__u64 dropped = 0; /* .bss: events lost to a full ring buffer */

static __always_inline struct ProcEvent *reserve(void)
{
	struct ProcEvent *e = bpf_ringbuf_reserve(&proc_events, sizeof(*e), 0);

	if (!e)
		__sync_fetch_and_add(&dropped, 1);
	return e;
}

SEC("tp/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 pid = bpf_get_current_pid_tgid() >> 32;
	__u64 now = bpf_ktime_get_ns();
	unsigned short fname_off = ctx->__data_loc_filename & 0xFFFF;
	struct ProcEvent *e;

	bpf_map_update_elem(&exec_start, &pid, &now, BPF_ANY);
	if (min_duration_ns) /* only exits are reported when filtering by lifetime */
		return 0;
	e = reserve();
	if (!e)
		return 0;
	e->pid = pid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->exit_code = 0;
	e->exit_event = 0;
	e->duration_ns = 0;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_probe_read_str(e->filename, sizeof(e->filename), (void *)ctx + fname_off);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("tp/sched/sched_process_exit")
int handle_exit(struct trace_event_raw_sched_process_template *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 id = bpf_get_current_pid_tgid(), *start, duration = 0;
	__u32 pid = id >> 32;
	struct ProcEvent *e;

	if (pid != (__u32)id) /* a thread, not the whole process */
		return 0;
	start = bpf_map_lookup_elem(&exec_start, &pid);
	if (start)
		duration = bpf_ktime_get_ns() - *start;
	else if (min_duration_ns)
		return 0;
	bpf_map_delete_elem(&exec_start, &pid);
	if (min_duration_ns && duration < min_duration_ns)
		return 0;
	e = reserve();
	if (!e)
		return 0;
	e->pid = pid;
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->exit_code = (BPF_CORE_READ(task, exit_code) >> 8) & 0xff;
	e->exit_event = 1;
	e->duration_ns = duration;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->filename[0] = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
