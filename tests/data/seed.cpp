// The seed: the question's program, completed so that it compiles, with
// one worker, one checkpointer and a 256 MiB array (each overridable with
// -D). Built with -DWITH_FORK it takes the snapshot. Beyond the question's
// output it prints the child's copy time and the child's resource usage,
// one `key value` per line.
//
//   g++ -O2 -std=c++17 -pthread -DWITH_FORK tests/data/seed.cpp -o seed
#include <unistd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <algorithm>
#include <array>
#include <cassert>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <iomanip>
#include <iostream>
#include <cmath>
#include <numeric>
#include <thread>
#include <vector>

#ifndef ARRAY_SIZE
#define ARRAY_SIZE 268435456 // 256 MiB
#endif
#ifndef NUM_WORKERS
#define NUM_WORKERS 1
#endif
#ifndef NUM_CHECKPOINTERS
#define NUM_CHECKPOINTERS 1
#endif
#define BATCH_SIZE 2097152 // 2MB

using inttype = uint64_t;
using timepoint = std::chrono::time_point<std::chrono::high_resolution_clock>;

constexpr uint64_t NUM_ELEMS() {
    return ARRAY_SIZE / sizeof(inttype);
}

int main() {
    // allocate array
    std::array<inttype, NUM_ELEMS()> *arrayptr = new std::array<inttype, NUM_ELEMS()>();
    std::array<inttype, NUM_ELEMS()> & array = *arrayptr;

    // allocate checkpoint space
    std::array<inttype, NUM_ELEMS()> *cpptr = new std::array<inttype, NUM_ELEMS()>();
    std::array<inttype, NUM_ELEMS()> & cp = *cpptr;

    // initialize array
    std::fill(array.begin(), array.end(), 123);

#ifdef WITH_FORK
    // spawn checkpointer threads
    int pid = fork();
    if (pid == -1) {
        perror("fork");
        return 1;
    }

    // child process -- do checkpoint
    if (pid == 0) {
        timepoint tCopy = std::chrono::high_resolution_clock::now();
        std::array<std::thread, NUM_CHECKPOINTERS> cpthreads;
        for (size_t tid = 0; tid < NUM_CHECKPOINTERS; tid++) {
            cpthreads[tid] = std::thread([&, tid] {
                // copy array
                const size_t numBatches = ARRAY_SIZE / BATCH_SIZE;
                for (size_t i = tid; i < numBatches; i += NUM_CHECKPOINTERS) {
                    void *src = reinterpret_cast<void*>(
                        reinterpret_cast<intptr_t>(array.data()) + i * BATCH_SIZE);
                    void *dst = reinterpret_cast<void*>(
                        reinterpret_cast<intptr_t>(cp.data()) + i * BATCH_SIZE);
                    memcpy(dst, src, BATCH_SIZE);
                    munmap(src, BATCH_SIZE);
                }
            });
        }
        for (std::thread& thread : cpthreads) {
            thread.join();
        }
        std::chrono::duration<double> durationCopy = std::chrono::high_resolution_clock::now() - tCopy;
        printf("CP finished successfully! Child exiting.\n");
        printf("child_copy_s %lf\n", durationCopy.count());
        fflush(stdout);
        exit(0);
    }
#endif // #ifdef WITH_FORK

    // spawn worker threads
    std::array<std::thread, NUM_WORKERS> threads;
    for (size_t tid = 0; tid < NUM_WORKERS; tid++) {
        threads[tid] = std::thread([&, tid] {
            // write to array
            std::array<inttype, NUM_ELEMS()>::iterator it;
            for (it = array.begin() + tid; it < array.end(); it += NUM_WORKERS) {
                *it = tid;
            }
        });
    }

    timepoint tStart = std::chrono::high_resolution_clock::now();

#ifdef WITH_FORK
    // allow reaping child process while workers work
    std::thread childWaitThread = std::thread([&] {
        int status;
        struct rusage usage;
        if (wait4(pid, &status, 0, &usage)) {
            timepoint tChild = std::chrono::high_resolution_clock::now();
            std::chrono::duration<double> durationChild = tChild - tStart;
            printf("reunited with child after (s): %lf\n", durationChild.count());
            printf("child_utime_s %lf\nchild_stime_s %lf\nchild_minflt %ld\n",
                   usage.ru_utime.tv_sec + usage.ru_utime.tv_usec / 1e6,
                   usage.ru_stime.tv_sec + usage.ru_stime.tv_usec / 1e6, usage.ru_minflt);
        }
    });
#endif

    // wait for workers to finish
    for (std::thread& thread : threads) {
        thread.join();
    }
    timepoint tEnd = std::chrono::high_resolution_clock::now();
    std::chrono::duration<double> duration = tEnd - tStart;
    printf("duration (s): %lf\n", duration.count());

#ifdef WITH_FORK
    childWaitThread.join();
#endif
    delete arrayptr;
    delete cpptr;
    return 0;
}
