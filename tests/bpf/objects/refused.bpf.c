// SPDX-License-Identifier: GPL-2.0
// A program the verifier refuses: it dereferences a scalar.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} side SEC(".maps");

SEC("socket")
int deref_scalar(struct __sk_buff *skb)
{
	int *p = (int *)(long)skb->len;
	return *p;
}
