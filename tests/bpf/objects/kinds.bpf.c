// SPDX-License-Identifier: GPL-2.0
// One program per attach kind; each counts into hits[kind] (.bss) when it fires for the test's own activity.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 target_tgid = 0; /* .rodata: the process whose syscalls count */
const volatile __u16 target_port = 0; /* .rodata: UDP destination port the packet programs count */

enum kind { TP, RAW_TP, KPROBE, KRETPROBE, TP_BTF, UPROBE, URETPROBE, XDP, TC, SOCKET, CGROUP, NKINDS };

__u64 hits[16] = {}; /* .bss */

static __always_inline void hit(enum kind k)
{
	__sync_fetch_and_add(&hits[k], 1);
}

static __always_inline int mine(void)
{
	return (bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int tp_openat(void *ctx)
{
	if (mine())
		hit(TP);
	return 0;
}

SEC("raw_tp/sys_enter")
int rawtp_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (mine())
		hit(RAW_TP);
	return 0;
}

SEC("kprobe/do_sys_openat2")
int kprobe_openat2(struct pt_regs *ctx)
{
	if (mine())
		hit(KPROBE);
	return 0;
}

SEC("kretprobe/do_sys_openat2")
int kretprobe_openat2(struct pt_regs *ctx)
{
	if (mine())
		hit(KRETPROBE);
	return 0;
}

SEC("tp_btf/sys_enter")
int BPF_PROG(tpbtf_sys_enter)
{
	if (mine())
		hit(TP_BTF);
	return 0;
}

SEC("uprobe")
int uprobe_target(struct pt_regs *ctx)
{
	hit(UPROBE);
	return 0;
}

SEC("uretprobe")
int uretprobe_target(struct pt_regs *ctx)
{
	hit(URETPROBE);
	return 0;
}

/* Packet programs: count UDP datagrams to target_port, given a pointer to the IPv4 header. */
static __always_inline int udp_to_port(void *ip, void *end)
{
	struct iphdr *iph = ip;
	struct udphdr *udp;

	if ((void *)(iph + 1) > end || iph->protocol != 17 /* IPPROTO_UDP */)
		return 0;
	udp = (void *)iph + iph->ihl * 4;
	if ((void *)(udp + 1) > end)
		return 0;
	return udp->dest == bpf_htons(target_port);
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) <= end && eth->h_proto == bpf_htons(0x0800) && udp_to_port(eth + 1, end))
		hit(XDP);
	return XDP_PASS;
}

SEC("tc")
int tc_count(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) <= end && eth->h_proto == bpf_htons(0x0800) && udp_to_port(eth + 1, end))
		hit(TC);
	return -1; /* TC_ACT_UNSPEC / TCX_NEXT: let the packet go on */
}

SEC("socket")
int socket_count(struct __sk_buff *skb)
{
	hit(SOCKET);
	return skb->len; /* keep the whole packet */
}

SEC("cgroup/sock_create")
int cgroup_sock_create(struct bpf_sock *sk)
{
	hit(CGROUP);
	return 1; /* allow */
}
