// C reference for benchmarks/bench_arrays.py: libbpf batch drain of the issue #16 schemas, on a map fd inherited
// from the driver. Prints "<entries> <nanoseconds>" on stdout.
//
//   c_arrays drain <map_fd> <batch>            LOOKUP_AND_DELETE_BATCH until ENOENT into one growing array
//   c_arrays groupby <map_fd> <batch> <port_off> <sum_off>
//                                              the same drain, then sum the u64 at <sum_off> of each value per the
//                                              big-endian u16 at <port_off> of each key (65,536 buckets)
//   c_arrays pop <map_fd>                      per-element LOOKUP_AND_DELETE_ELEM (queue pop) until ENOENT
#include <arpa/inet.h>
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

// Drains the whole map into keys/vals arrays sized for max_entries (what an application that keeps the result
// does; the Python array forms keep it too). Returns the entry count, or -1.
static long drain(int fd, int batch_size, char **keys_out, char **vals_out, uint32_t *ks_out, uint32_t *vs_out) {
    struct bpf_map_info info = {0};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len)) { perror("info"); return -1; }
    uint32_t ks = info.key_size, vs = info.value_size;
    size_t cap = (size_t)info.max_entries + batch_size;
    char *keys = malloc(ks * cap), *vals = malloc(vs * cap);
    uint64_t in_tok = 0, out_tok = 0;
    int first = 1;
    size_t total = 0;
    for (;;) {
        uint32_t count = batch_size;
        if (total + count > cap) count = cap - total;
        int err = bpf_map_lookup_and_delete_batch(fd, first ? NULL : &in_tok, &out_tok, keys + total * ks,
                                                  vals + total * vs, &count, NULL);
        if (err && errno == ENOSPC && count == 0) { fprintf(stderr, "ENOSPC\n"); return -1; }
        total += count;
        if (err) { if (errno == ENOENT) break; perror("batch"); return -1; }
        in_tok = out_tok;
        first = 0;
    }
    *keys_out = keys; *vals_out = vals; *ks_out = ks; *vs_out = vs;
    return (long)total;
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
    if (argc < 3) { fprintf(stderr, "usage: c_arrays drain|groupby|pop FD [BATCH [PORT_OFF SUM_OFF]]\n"); return 2; }
    int fd = atoi(argv[2]);
    int bs = argc > 3 ? atoi(argv[3]) : 4096;
    if (!strcmp(argv[1], "pop")) return pop(fd);
    char *keys, *vals;
    uint32_t ks, vs;
    uint64_t t0 = now_ns();
    long n = drain(fd, bs, &keys, &vals, &ks, &vs);
    if (n < 0) return 1;
    uint64_t sink = n ? (uint8_t)keys[0] + (uint8_t)vals[(n - 1) * vs] : 0;  /* touch the data */
    if (!strcmp(argv[1], "groupby")) {
        int port_off = atoi(argv[4]), sum_off = atoi(argv[5]);
        uint64_t *sums = calloc(65536, sizeof(uint64_t));
        for (long i = 0; i < n; i++) {
            uint16_t port;
            uint64_t v;
            memcpy(&port, keys + i * ks + port_off, 2);
            memcpy(&v, vals + i * vs + sum_off, 8);
            sums[ntohs(port)] += v;
        }
        for (int p = 0; p < 65536; p++) sink += sums[p];
    } else if (strcmp(argv[1], "drain")) {
        return 2;
    }
    uint64_t t1 = now_ns();
    printf("%ld %llu\n", n, (unsigned long long)(t1 - t0));
    fprintf(stderr, "sink %llu\n", (unsigned long long)sink);
    return 0;
}
