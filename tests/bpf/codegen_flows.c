// Uses the C header generated from tests/codegen/cases/flows/schema.py: the maps and structs declared in Python.
// A SYSCALL program copies the chosen key/value/event from its context into the maps.
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
	struct Event e;

	__builtin_memcpy(&k, &ctx->key, sizeof(k));
	__builtin_memcpy(&v, &ctx->val, sizeof(v));
	__builtin_memcpy(&e, &ctx->ev, sizeof(e));
	if (bpf_map_update_elem(&flows, &k, &v, BPF_ANY))
		return 1;
	if (bpf_map_push_elem(&events, &e, 0))
		return 2;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
