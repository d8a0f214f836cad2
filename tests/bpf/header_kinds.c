// Uses the C header generated from tests/codegen/cases/kinds/schema.py (one map of every kind). Compiled twice by
// tests/kernel/test_header_kinds.py: with the kernel uapi headers, and with -DUSE_VMLINUX after a vmlinux.h
// (CO-RE). A raw tracepoint program (run with TEST_RUN; a sleepable SYSCALL program may not use queues, stacks,
// bloom filters or LPM tries) writes one entry derived from its context into every map.
#ifdef USE_VMLINUX
#include "vmlinux.h"
#endif
#include "kinds.h"

struct args {
	struct KindsKey key;
	struct KindsValue val;
	struct KindsPrefix prefix;
	struct KindsEvent ev;
	__u64 n;
	struct KindsFlags flags;
};

SEC("raw_tp")
int put(struct args *ctx)
{
	struct KindsKey k;
	struct KindsValue v;
	struct KindsPrefix p;
	struct KindsEvent e;
	struct KindsFlags fl;
	__u64 n = ctx->n;
	__u32 n32 = (__u32)n;
	__u32 idx = 1;

	__builtin_memcpy(&k, &ctx->key, sizeof(k));
	__builtin_memcpy(&v, &ctx->val, sizeof(v));
	__builtin_memcpy(&p, &ctx->prefix, sizeof(p));
	__builtin_memcpy(&e, &ctx->ev, sizeof(e));
	__builtin_memcpy(&fl, &ctx->flags, sizeof(fl));
	if (fl.state != 9 || fl.delta != -3) /* C reads the bitfields where Python wrote them */
		return 20;
	fl.window += 1;
	fl.delta -= 1;
	if (bpf_map_update_elem(&k_hash, &k, &v, BPF_ANY))
		return 1;
	if (bpf_map_update_elem(&k_lru_hash, &n, &v, BPF_ANY))
		return 2;
	if (bpf_map_update_elem(&k_percpu_hash, &n32, &n, BPF_ANY))
		return 3;
	if (bpf_map_update_elem(&k_lru_pc_hash, &k, &v, BPF_ANY))
		return 4;
	if (bpf_map_update_elem(&k_array, &idx, &v, BPF_ANY))
		return 5;
	if (bpf_map_update_elem(&k_array_key, &idx, &n, BPF_ANY))
		return 6;
	if (bpf_map_update_elem(&k_percpu_array, &idx, &v, BPF_ANY))
		return 7;
	if (bpf_map_update_elem(&k_lpm, &p, &n32, BPF_ANY))
		return 8;
	if (bpf_map_push_elem(&k_queue, &e, 0))
		return 9;
	if (bpf_map_push_elem(&k_stack, &n, 0))
		return 10;
	if (bpf_map_push_elem(&k_bloom, &n32, 0))
		return 11;
	if (bpf_ringbuf_output(&k_ringbuf, &e, sizeof(e), 0))
		return 12;
	__u32 quad[4] = {n32, n32 + 1, n32 + 2, n32 + 3};
	if (bpf_map_update_elem(&k_inline, &n, quad, BPF_ANY))
		return 14;
	if (bpf_map_update_elem(&k_flags, &n32, &fl, BPF_ANY))
		return 15;
	if (bpf_ringbuf_output(&k_ringbuf_raw, &n, sizeof(n), 0))
		return 13;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
