// cowsnap-calibrate: the harness's fork snapshot work as a plain C program,
// so `cowsnap calibrate` can show how far the harness is from plain C.
//
//     cowsnap-calibrate SIZE_MIB BATCH_KIB [PARKED_THREADS [WARM_MIB]]
//
// Prints one JSON object (times in seconds): fork_empty_s, fork_s, write_s,
// write_after_exit_s, write_during_copy_s, pages, and fresh_page_us (the
// first write to each page of a fresh 4 MiB mapping just before the copy
// phase's fork, as the harness probes before its snapshot). WARM_MIB MiB
// (default 0) are touched and freed first, as the harness's warm_mib. One
// writer (the main thread, every element in order: the harness's
// pattern=blocked, writers=1), one copier in the child (dest=fresh,
// release=none), 4 KiB pages.
// PARKED_THREADS (default 0) threads that only wait are started after the
// empty fork, as the harness's process has threads beside its writer.
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void die(const char* what) {
    fprintf(stderr, "cowsnap-calibrate: %s: %s\n", what, strerror(errno));
    _exit(1);  // also in a child: no stdio flush, no atexit handlers
}

static double now(void) {
    struct timespec t;
    if (clock_gettime(CLOCK_MONOTONIC, &t) != 0) die("clock_gettime");
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

// The value element i holds at snapshot time; writers store its complement.
static inline uint64_t fork_time_value(size_t i) { return i * UINT64_C(0x9E3779B97F4A7C15) + 1; }

static void fill(uint64_t* a, size_t n) {
    for (size_t i = 0; i < n; ++i) a[i] = fork_time_value(i);
}

// The timed work: one writer, every element in order.
static double time_writes(uint64_t* a, size_t n) {
    const double t0 = now();
    for (size_t i = 0; i < n; ++i) a[i] = ~fork_time_value(i);
    return now() - t0;
}

// Private anonymous memory on 4 KiB pages (no THP), untouched.
static uint64_t* map_array(size_t bytes) {
    void* p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("mmap");
    if (madvise(p, bytes, MADV_NOHUGEPAGE) != 0) die("madvise(MADV_NOHUGEPAGE)");
    return p;
}

// The child's snapshot: copy the inherited array into fresh memory, one
// batch (one memcpy) at a time, with one thread.
static void child_copy(const uint64_t* a, size_t bytes, size_t batch) {
    char* dest = (char*)map_array(bytes);
    for (size_t off = 0; off < bytes; off += batch)
        memcpy(dest + off, (const char*)a + off, bytes - off < batch ? bytes - off : batch);
}

static void reap(pid_t pid) {
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) die("waitpid");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "cowsnap-calibrate: child failed (wait status %d)\n", status);
        exit(1);
    }
}

// A thread that waits until the pipe it reads is closed.
static void* parked(void* fd) {
    char c;
    while (read(*(int*)fd, &c, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

// One write to each 4 KiB page (volatile: the compiler keeps every one).
static void write_each_page(void* p, size_t bytes) {
    for (size_t at = 0; at < bytes; at += 4096) ((volatile char*)p)[at] = 1;
}

// Touch each 4 KiB page of a fresh mapping once; the seconds per page.
static double touch_fresh(size_t bytes) {
    char* p = (char*)map_array(bytes);
    const double t0 = now();
    write_each_page(p, bytes);
    const double t = now() - t0;
    if (munmap(p, bytes) != 0) die("munmap");
    return t / (double)(bytes / 4096);
}

static size_t parse(const char* text, const char* name) {
    char* end;
    errno = 0;
    const unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end || v == 0 || v > (1ull << 30)) {
        fprintf(stderr, "cowsnap-calibrate: %s must be a positive integer, not %s\n", name, text);
        exit(1);
    }
    return (size_t)v;
}

int main(int argc, char** argv) {
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: cowsnap-calibrate SIZE_MIB BATCH_KIB [PARKED_THREADS [WARM_MIB]]\n");
        return 1;
    }
    const size_t bytes = parse(argv[1], "SIZE_MIB") << 20;
    const size_t batch = parse(argv[2], "BATCH_KIB") << 10;
    const size_t threads = argc >= 4 && strcmp(argv[3], "0") != 0 ? parse(argv[3], "PARKED_THREADS") : 0;
    const size_t warm = argc == 5 && strcmp(argv[4], "0") != 0 ? parse(argv[4], "WARM_MIB") << 20 : 0;
    if (warm > 0) {  // its memory backed again, then freed, as the harness's warm_mib
        void* w = map_array(warm);
        if (madvise(w, warm, MADV_POPULATE_WRITE) != 0) write_each_page(w, warm);
        if (munmap(w, warm) != 0) die("munmap");
    }
    const size_t n = bytes / sizeof(uint64_t);
    const long page = sysconf(_SC_PAGESIZE);
    if (page <= 0) die("sysconf(_SC_PAGESIZE)");

    // Empty fork: the cost of fork() for a process with nothing big mapped.
    double fork_empty_s = 1e9;
    for (int k = 0; k < 3; ++k) {
        const double t0 = now();
        const pid_t pid = fork();
        const double t = now() - t0;
        if (pid < 0) die("fork");
        if (pid == 0) _exit(0);
        reap(pid);
        if (t < fork_empty_s) fork_empty_s = t;
    }

    int park[2];
    if (pipe(park) != 0) die("pipe");
    pthread_t waiting[64];
    if (threads > 64) {
        fprintf(stderr, "cowsnap-calibrate: at most 64 PARKED_THREADS\n");
        return 1;
    }
    for (size_t k = 0; k < threads; ++k)
        if ((errno = pthread_create(&waiting[k], NULL, parked, &park[0])) != 0) die("pthread_create");

    uint64_t* a = map_array(bytes);
    fill(a, n);

    // No snapshot: every page is already private and writable, no faults.
    const double write_s = time_writes(a, n);
    fill(a, n);

    // Reuse: after the child has exited the parent's PTEs are still
    // write-protected, so each first write faults, but the page is
    // exclusive again and is reused, not copied.
    pid_t pid = fork();
    if (pid < 0) die("fork");
    if (pid == 0) {
        child_copy(a, bytes, batch);
        _exit(0);
    }
    reap(pid);
    const double write_after_exit_s = time_writes(a, n);
    fill(a, n);

    // Copy: the writer runs while the child holds the snapshot (until the
    // parent closes the pipe), so each first write copies the page.
    int hold[2];
    if (pipe(hold) != 0) die("pipe");
    const double fresh_page_us = touch_fresh(4u << 20) * 1e6;
    const double t0 = now();
    pid = fork();
    const double fork_s = now() - t0;
    if (pid < 0) die("fork");
    if (pid == 0) {
        if (close(hold[1]) != 0) die("close");
        child_copy(a, bytes, batch);
        char c;
        ssize_t got;
        while ((got = read(hold[0], &c, 1)) != 0)  // end of file: the writer is done
            if (got < 0 && errno != EINTR) die("read");
        _exit(0);
    }
    const double write_during_copy_s = time_writes(a, n);
    if (close(hold[0]) != 0 || close(hold[1]) != 0) die("close");
    reap(pid);
    if (close(park[1]) != 0) die("close");
    for (size_t k = 0; k < threads; ++k)
        if ((errno = pthread_join(waiting[k], NULL)) != 0) die("pthread_join");

    printf("{\"fork_empty_s\": %.9f, \"fork_s\": %.9f, \"write_s\": %.9f, "
           "\"write_after_exit_s\": %.9f, \"write_during_copy_s\": %.9f, \"pages\": %zu, "
           "\"fresh_page_us\": %.6f}\n",
           fork_empty_s, fork_s, write_s, write_after_exit_s, write_during_copy_s, bytes / (size_t)page,
           fresh_page_us);
    if (fflush(stdout) != 0) die("stdout");
    return 0;
}
