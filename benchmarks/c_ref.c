// C reference for `make bench`: the same operations as bpfschema, through libbpf, on a map fd inherited from the
// benchmark driver. Prints "<entries> <nanoseconds>" on stdout.
//
//   c_ref drain_batch <map_fd> <batch>   LOOKUP_AND_DELETE_BATCH until ENOENT
//   c_ref lookup_batch <map_fd> <batch>  LOOKUP_BATCH over the whole map
//   c_ref pop <map_fd>                   per-element LOOKUP_AND_DELETE_ELEM (queue pop) until ENOENT
#include <bpf/bpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int batch(int fd, int batch_size, int delete) {
    struct bpf_map_info info = {0};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len)) { perror("info"); return 1; }
    uint32_t ks = info.key_size, vs = info.value_size;
    char *keys = malloc((size_t)ks * batch_size * 4), *vals = malloc((size_t)vs * batch_size * 4);
    uint64_t in_tok = 0, out_tok = 0;
    int first = 1;
    uint64_t total = 0, sink = 0;
    uint64_t t0 = now_ns();
    for (;;) {
        uint32_t count = batch_size;
        int err = delete ? bpf_map_lookup_and_delete_batch(fd, first ? NULL : &in_tok, &out_tok, keys, vals, &count, NULL)
                         : bpf_map_lookup_batch(fd, first ? NULL : &in_tok, &out_tok, keys, vals, &count, NULL);
        if (err && errno == ENOSPC && count == 0) { fprintf(stderr, "ENOSPC\n"); return 1; }
        total += count;
        if (count) sink += (uint8_t)keys[0] + (uint8_t)vals[(count - 1) * vs];  /* touch the data */
        if (err) { if (errno == ENOENT) break; perror("batch"); return 1; }
        in_tok = out_tok;
        first = 0;
    }
    uint64_t t1 = now_ns();
    printf("%llu %llu\n", (unsigned long long)total, (unsigned long long)(t1 - t0));
    return sink == 0xffffffffffffffffull;
}

static int pop(int fd) {
    struct bpf_map_info info = {0};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len)) { perror("info"); return 1; }
    char *val = malloc(info.value_size);
    uint64_t total = 0;
    uint64_t t0 = now_ns();
    while (bpf_map_lookup_and_delete_elem(fd, NULL, val) == 0) total++;
    uint64_t t1 = now_ns();
    if (errno != ENOENT) { perror("pop"); return 1; }
    printf("%llu %llu\n", (unsigned long long)total, (unsigned long long)(t1 - t0));
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: c_ref drain_batch|lookup_batch|pop FD [BATCH]\n"); return 2; }
    int fd = atoi(argv[2]);
    int bs = argc > 3 ? atoi(argv[3]) : 4096;
    if (!strcmp(argv[1], "drain_batch")) return batch(fd, bs, 1);
    if (!strcmp(argv[1], "lookup_batch")) return batch(fd, bs, 0);
    if (!strcmp(argv[1], "pop")) return pop(fd);
    return 2;
}
