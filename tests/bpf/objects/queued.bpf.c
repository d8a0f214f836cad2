// SPDX-License-Identifier: GPL-2.0
// A queue and a ring buffer of one event struct, used by a socket filter: maps without BTF of their own, whose
// value type is only recorded in the object's BTF (loaded with the program).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct qevent {
	__u32 pid;
	__u32 kind;
	__u64 ts;
};

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, 64);
	__type(value, struct qevent);
} qevents SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} revents SEC(".maps");

SEC("socket")
int push_event(struct __sk_buff *skb)
{
	struct qevent ev = {.pid = 7, .kind = 1, .ts = bpf_ktime_get_ns()};

	bpf_map_push_elem(&qevents, &ev, 0);
	bpf_ringbuf_output(&revents, &ev, sizeof(ev), 0);
	return 0;
}
