// SPDX-License-Identifier: GPL-2.0
// Fixture for tests/codegen/test_gen_objects.py: an object whose only map is a perf event array (events go to
// perf buffers, not to any map bpfschema reads): the generated module must still be made, saying why it is empty.
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} events SEC(".maps");

SEC("syscall")
int emit(void *ctx)
{
	__u64 x = 1;

	bpf_perf_event_output(ctx, &events, BPF_F_CURRENT_CPU, &x, sizeof(x));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
