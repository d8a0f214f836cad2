// A user-space target for uprobes: calls bpfschema_uprobe_target() argv[1] times.
#include <stdlib.h>

__attribute__((noinline)) int bpfschema_uprobe_target(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1, acc = 0;
	for (int i = 0; i < n; i++)
		acc += bpfschema_uprobe_target(i);
	return acc == -1;
}
