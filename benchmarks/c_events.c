// C reference for the event benchmarks (`make bench`): libbpf's ring_buffer__consume / perf_buffer__consume on a
// map fd inherited from the Python driver. The callback touches each record (sums its first byte), as a consumer
// would. Protocol on stdin/stdout, so the driver can fill the rings after libbpf set them up:
//   c_events ring <fd>         prints "ready"; on each line "go" consumes and prints "<records> <ns>"
//   c_events perf <fd> <pages> same, with perf_buffer__new on every online CPU (it stores its own fds in the
//                              map); on "point" it stores them again, each at its CPU's slot, and prints "ok"
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
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

static uint64_t count, sink;

static int ring_cb(void *ctx, void *data, size_t size) {
    count++;
    sink += ((uint8_t *)data)[0] + size;
    return 0;
}

static void perf_cb(void *ctx, int cpu, void *data, uint32_t size) {
    count++;
    sink += ((uint8_t *)data)[0] + size;
}

static void lost_cb(void *ctx, int cpu, __u64 n) { fprintf(stderr, "lost %llu\n", (unsigned long long)n); }

// The map slot (CPU) of each of libbpf's perf buffers: perf_buffer__new opens one buffer per CPU i below
// min(possible CPUs, max_entries) that is online, in order, and stores it at map key i. So buffer j is the j-th
// such online CPU, which is j itself only when no CPU below it is offline. Fills keys[]; returns the count.
static int buffer_keys(int map_fd, int *keys, int cap) {
    struct bpf_map_info info;
    __u32 len = sizeof(info);
    memset(&info, 0, sizeof(info));
    if (bpf_obj_get_info_by_fd(map_fd, &info, &len)) { perror("bpf_obj_get_info_by_fd"); return -1; }
    int cnt = libbpf_num_possible_cpus();
    if (cnt < 0) return -1;
    if (info.max_entries && (int)info.max_entries < cnt) cnt = (int)info.max_entries;
    FILE *f = fopen("/sys/devices/system/cpu/online", "r");
    if (!f) { perror("online cpus"); return -1; }
    int n = 0, a, b;
    char sep;
    while (fscanf(f, "%d", &a) == 1) {
        b = a;
        if (fscanf(f, "%c", &sep) == 1 && sep == '-') {
            if (fscanf(f, "%d", &b) != 1) break;
            if (fscanf(f, "%c", &sep) != 1) sep = 0;
        }
        for (int c = a; c <= b && c < cnt && n < cap; c++) keys[n++] = c;
        if (sep != ',') break;
    }
    fclose(f);
    return n;
}

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int fd = atoi(argv[2]);
    struct ring_buffer *rb = NULL;
    struct perf_buffer *pb = NULL;
    if (!strcmp(argv[1], "ring")) {
        rb = ring_buffer__new(fd, ring_cb, NULL, NULL);
        if (!rb) { perror("ring_buffer__new"); return 1; }
    } else {
        pb = perf_buffer__new(fd, argc > 3 ? atoi(argv[3]) : 64, perf_cb, lost_cb, NULL, NULL);
        if (!pb) { perror("perf_buffer__new"); return 1; }
    }
    printf("ready\n");
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (!strncmp(line, "point", 5)) {
            // Point the map's slots back at this process's rings (the driver points them at its own buffers
            // between C runs): buffer j at the slot of its CPU, where perf_buffer__new stored it.
            if (!pb) return 1;
            int keys[4096];
            int nk = buffer_keys(fd, keys, 4096);
            if (nk != (int)perf_buffer__buffer_cnt(pb)) {
                fprintf(stderr, "%d online CPUs, %d perf buffers\n", nk, (int)perf_buffer__buffer_cnt(pb));
                return 1;
            }
            for (int j = 0; j < nk; j++) {
                int bfd = perf_buffer__buffer_fd(pb, j);
                if (bpf_map_update_elem(fd, &keys[j], &bfd, 0)) { perror("bpf_map_update_elem"); return 1; }
            }
            printf("ok\n");
            fflush(stdout);
            continue;
        }
        count = 0;
        uint64_t t0 = now_ns();
        int err = rb ? ring_buffer__consume(rb) : perf_buffer__consume(pb);
        uint64_t t1 = now_ns();
        if (err < 0) { fprintf(stderr, "consume: %d\n", err); return 1; }
        printf("%llu %llu\n", (unsigned long long)count, (unsigned long long)(t1 - t0));
        fflush(stdout);
    }
    if (rb) ring_buffer__free(rb);
    if (pb) perf_buffer__free(pb);
    return sink == 0xffffffffffffffffull;
}
