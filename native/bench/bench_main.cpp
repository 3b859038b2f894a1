// cowsnap-bench: measures one point in a process of its own. Reads the
// Params on stdin, writes the Result on stdout (wire.cpp's text lines).
#include "internal.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <thread>

namespace {

bool exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// Test hook: with COWSNAP_TEST_GATE naming a folder, the benchmark writes
// <pid>.waiting there and waits, its settings in place and nothing measured
// yet, until the folder holds <pid> or "all". Tests use it to hold a sweep
// at a known point; sweeps never set it.
void wait_at_gate() {
    const char* gate = std::getenv("COWSNAP_TEST_GATE");
    if (gate == nullptr || *gate == '\0') return;
    const std::string folder(gate), pid = std::to_string(getpid());
    const std::string waiting = folder + "/" + pid + ".waiting";
    std::ofstream(waiting + ".tmp") << pid;
    std::rename((waiting + ".tmp").c_str(), waiting.c_str());  // whole when seen
    while (!exists(folder + "/" + pid) && !exists(folder + "/all"))
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

}  // namespace

int main() {
    using namespace cowsnap::detail;
    join_memory_cgroup();  // before anything is allocated
    const std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    cowsnap::Result result;
    try {
        const cowsnap::Params params = params_from_text(input);
        wait_at_gate();
        result = measure(params);
    } catch (const std::exception& error) {
        result.status = "failed";
        result.reason = error.what();
    }
    std::cout << result_to_text(result) << std::flush;
    return 0;
}
