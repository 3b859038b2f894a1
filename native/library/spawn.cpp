// run(): the library's side. Starts the benchmark executable, sends it the
// Params and reads back its Result. posix_spawn does not copy this
// process's page tables, so a large caller (Python, Cling) costs the
// benchmark nothing.
#include "wire.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

extern char** environ;

namespace cowsnap {

using namespace detail;

namespace {

Result failed(const std::string& reason) {
    Result result;
    result.status = "failed";
    result.reason = reason;
    return result;
}

}  // namespace

Result run(const Params& params, const std::string& executable) {
    int to_child[2], from_child[2];
    if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(from_child, O_CLOEXEC) != 0)
        return failed(std::string("pipe: ") + std::strerror(errno));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&actions, from_child[1], 1);
    pid_t pid;
    char* argv[] = {const_cast<char*>(executable.c_str()), nullptr};
    const int spawned = posix_spawn(&pid, executable.c_str(), &actions, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    close(to_child[0]);
    close(from_child[1]);
    if (spawned != 0) {
        close(to_child[1]);
        close(from_child[0]);
        return failed("cannot start " + executable + ": " + std::strerror(spawned));
    }
    // The Params fit in the pipe's buffer: write all, then read all.
    const std::string input = params_to_text(params);
    (void)!write(to_child[1], input.data(), input.size());
    close(to_child[1]);
    std::string output;
    char buffer[65536];
    for (ssize_t got; (got = read(from_child[0], buffer, sizeof buffer)) != 0;) {
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) break;
        output.append(buffer, std::size_t(got));
    }
    close(from_child[0]);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    Result result = result_from_text(output);
    if (WIFSIGNALED(status))
        return failed("the benchmark process was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
                      strsignal(WTERMSIG(status)) + ")");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return failed("the benchmark process exited with status " + std::to_string(WEXITSTATUS(status)));
    return result;
}

}  // namespace cowsnap
