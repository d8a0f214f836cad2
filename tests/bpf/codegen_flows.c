// Uses the C header generated from tests/codegen/cases/flows/schema.py: the maps and structs declared in Python.
// A SYSCALL program copies the chosen key/value from its context into the hash; a socket filter pushes the chosen
// event (its packet data) into the queue: before Linux 6.9 a sleepable program may not use a queue.
#include "flows.h"

struct args {
	struct FlowKey key;
	struct FlowStats val;
	struct Event ev;
};

SEC("syscall")
int put(struct args *ctx)
{
	struct FlowKey k;
	struct FlowStats v;

	__builtin_memcpy(&k, &ctx->key, sizeof(k));
	__builtin_memcpy(&v, &ctx->val, sizeof(v));
	if (bpf_map_update_elem(&flows, &k, &v, BPF_ANY))
		return 1;
	return 0;
}

SEC("socket")
int push_event(struct __sk_buff *skb)
{
	struct Event e;

	if (bpf_skb_load_bytes(skb, 0, &e, sizeof(e)))
		return 3;
	if (bpf_map_push_elem(&events, &e, 0))
		return 2;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
