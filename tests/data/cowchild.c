/* A program that forks a snapshot child and writes its memory, each step
 * held until the test says go, so the test never depends on timing.
 *
 *   cowchild PAGES CONTROL_DIR [CHILD_PAGES]
 *
 * Fills PAGES pages, forks a child that holds them (blocked reading
 * CONTROL_DIR/child, a FIFO), writes the first half of the pages once while
 * the child lives, then waits for CONTROL_DIR/go-exit (the test then lets
 * the child exit by writing to the FIFO; the parent reaps it), waits for
 * CONTROL_DIR/go-write, writes the second half and waits for
 * CONTROL_DIR/go-end before it exits. Each step it has reached is announced
 * by creating CONTROL_DIR/<step>. With CHILD_PAGES, the child first writes
 * the last CHILD_PAGES pages itself (pages the parent does not write while
 * the child lives: each a copy, as the parent still shares them). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static const char* dir;

static void announce(const char* step) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, step);
    close(open(path, O_CREAT | O_WRONLY, 0644));
}

static void await(const char* step) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, step);
    while (access(path, F_OK) != 0) usleep(2000);
}

static void write_pages(char* data, long first, long end, char value) {
    for (long i = first; i < end; ++i) data[i * 4096] = value;
}

int main(int argc, char** argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: cowchild PAGES CONTROL_DIR [CHILD_PAGES]\n");
        return 2;
    }
    const long pages = atol(argv[1]);
    dir = argv[2];
    char* data = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) return 1;
    madvise(data, pages * 4096, MADV_NOHUGEPAGE);
    memset(data, 1, pages * 4096);
    announce("filled");
    await("go-fork");
    char fifo[4096];
    snprintf(fifo, sizeof fifo, "%s/child", dir);
    const long child_pages = argc == 4 ? atol(argv[3]) : 0;
    const pid_t child = fork();
    if (child == 0) {
        write_pages(data, pages - child_pages, pages, 4);
        char byte;
        const int fd = open(fifo, O_RDONLY);
        if (read(fd, &byte, 1) < 0) _exit(1);
        _exit(0);
    }
    write_pages(data, 0, pages / 2, 2);
    announce("written-during");
    await("go-exit");
    waitpid(child, NULL, 0);
    announce("reaped");
    await("go-write");
    write_pages(data, pages / 2, pages, 3);
    announce("written-after");
    await("go-end");
    return 0;
}
