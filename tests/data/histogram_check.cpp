// Feeds the benchmark's write-latency histogram (native/bench/latency.cpp) the
// nanosecond values read from stdin, one per line, and prints each quantile
// asked for on the command line as "q ns", then "max ns".
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "internal.h"

int main(int argc, char** argv) {
    cowsnap::detail::LatencyHistogram histogram;
    std::uint64_t ns;
    while (std::cin >> ns) histogram.record(ns);
    for (int i = 1; i < argc; ++i) {
        const double q = std::atof(argv[i]);
        std::printf("%s %llu\n", argv[i], static_cast<unsigned long long>(histogram.quantile_ns(q)));
    }
    std::printf("max %llu\n", static_cast<unsigned long long>(histogram.max_ns));
    return 0;
}
