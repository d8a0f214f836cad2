// SPDX-License-Identifier: GPL-2.0
// Objects as other projects write them: sections holding only static variables (libbpf 1.1 does not make those
// maps mmapable), and event maps declared with their record type (cilium/ebpf's examples, bpfschema's headers).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct event {
	__u32 pid;
	__u8 comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__type(value, struct event); /* libbpf would pass sizeof(struct event); the kernel wants 4 */
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
	__type(value, struct event); /* the kernel wants value_size 0 */
} ring_events SEC(".maps");

static __u64 seen;                       /* .bss, static only: not mmapable */
static volatile __u64 limit SEC(".data") = 3; /* .data, static only */

SEC("socket")
int count_until_limit(struct __sk_buff *skb)
{
	if (seen < limit)
		__sync_fetch_and_add(&seen, 1);
	return skb->len;
}
