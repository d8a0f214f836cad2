// SPDX-License-Identifier: GPL-2.0
// Compiled without -g by the tests: an object with no .BTF section.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("socket")
int keep_all(struct __sk_buff *skb)
{
	return skb->len;
}
