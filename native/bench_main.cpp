// cowsnap-bench: measures one point in a process of its own. Reads the
// Params on stdin, writes the Result on stdout (wire.cpp's text lines).
#include "internal.h"

#include <iostream>
#include <iterator>

int main() {
    using namespace cowsnap::detail;
    const std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    cowsnap::Result result;
    try {
        result = measure(params_from_text(input));
    } catch (const std::exception& error) {
        result.status = "failed";
        result.reason = error.what();
    }
    std::cout << result_to_text(result) << std::flush;
    return 0;
}
