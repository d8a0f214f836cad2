// SPDX-License-Identifier: GPL-2.0
// monitor: process execs and outgoing TCP connections, as typed events on a ring buffer and as counters per
// (kind, command) in a hash map. struct Event, struct CountKey, enum EventKind and both maps come from
// schemas/monitor.py through the generated monitor.h; vmlinux.h (the running kernel's types, CO-RE) is generated
// at build time by bpftool.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "monitor.h"

char LICENSE[] SEC("license") = "GPL";

#define AF_INET 2 /* a macro of the socket headers, so not in vmlinux.h */

/* .rodata, set from Python before load: report only this process and its children (0: every process). */
const volatile __u32 filter_tgid = 0;

/* .bss, read from Python through mmap while the program runs. */
__u64 dropped = 0;	/* events lost to a full ring buffer (the counters still count them) */
__u64 filtered = 0;	/* events of other processes, left out by filter_tgid */

static __always_inline struct Event *start_event(__u32 kind)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 ppid = BPF_CORE_READ(task, real_parent, tgid); /* CO-RE: relocated for the running kernel at load */
	struct CountKey key = { .kind = kind };
	__u64 zero = 0, *count;
	struct Event *e;

	if (filter_tgid && tgid != filter_tgid && ppid != filter_tgid) {
		__sync_fetch_and_add(&filtered, 1);
		return NULL;
	}
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	count = bpf_map_lookup_elem(&counts, &key);
	if (!count) { /* first event of this key (another CPU may create it at the same time: NOEXIST, look again) */
		bpf_map_update_elem(&counts, &key, &zero, BPF_NOEXIST);
		count = bpf_map_lookup_elem(&counts, &key);
	}
	if (count)
		__sync_fetch_and_add(count, 1);

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__sync_fetch_and_add(&dropped, 1);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->pid = tgid;
	e->ppid = ppid;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->ts_ns = bpf_ktime_get_ns();
	__builtin_memcpy(e->comm, key.comm, sizeof(e->comm));
	return e;
}

SEC("tracepoint/sched/sched_process_exec")
int on_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	unsigned int fname_off = ctx->__data_loc_filename & 0xFFFF;
	struct Event *e = start_event(EventKind_EXEC);

	if (!e)
		return 0;
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), (void *)ctx + fname_off);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* A TCP socket entering SYN_SENT: connect() in the calling process's context (so pid and comm are the caller's;
 * the source port is not chosen yet). */
SEC("tracepoint/sock/inet_sock_set_state")
int on_tcp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct Event *e;

	if (ctx->protocol != IPPROTO_TCP || ctx->newstate != TCP_SYN_SENT || ctx->family != AF_INET)
		return 0;
	e = start_event(EventKind_CONNECT);
	if (!e)
		return 0;
	__builtin_memcpy(&e->daddr, ctx->daddr, sizeof(e->daddr));
	e->dport = ctx->dport;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
