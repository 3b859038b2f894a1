/* A program for a watch point (method=watch) that takes its own fork
 * snapshot, each step held until the point's commands say go, so a test
 * never depends on timing.
 *
 *   cowpoint PAGES
 *
 * In its working folder: fills PAGES pages and creates `filled`
 * (ready_command: test -e filled); waits for `go-fork` (snapshot_command:
 * touch go-fork); forks a child that holds the pages until the parent has
 * written the first half of them (one copy-on-write copy per page, the
 * child still shares them) and then exits; reaps it; waits for `go-after`
 * (after_command: touch go-after); writes the second half (each write
 * reuses its page: the child is gone) and exits with status 0. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static void await(const char* path) {
    while (access(path, F_OK) != 0) usleep(2000);
}

static void write_pages(char* data, long first, long end, char value) {
    for (long i = first; i < end; ++i) data[i * 4096] = value;
}

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    const long pages = atol(argv[1]);
    char* data = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data == MAP_FAILED) return 1;
    madvise(data, pages * 4096, MADV_NOHUGEPAGE);
    memset(data, 1, pages * 4096);
    close(open("filled", O_CREAT | O_WRONLY, 0644));
    await("go-fork");
    int done[2];
    if (pipe(done) != 0) return 1;
    const pid_t child = fork();
    if (child < 0) return 1;
    if (child == 0) {
        char byte;
        close(done[1]);
        _exit(read(done[0], &byte, 1) == 1 ? 0 : 1);
    }
    close(done[0]);
    write_pages(data, 0, pages / 2, 2);
    if (write(done[1], "x", 1) != 1) return 1;
    int status;
    if (waitpid(child, &status, 0) != child || status != 0) return 1;
    await("go-after");
    write_pages(data, pages / 2, pages, 3);
    return 0;
}
