// Write latency: a fixed-size, log-bucketed histogram of nanoseconds in the
// manner of HdrHistogram. Values below 2^sub_bits ns are exact; above, each
// power of two is split into 2^sub_bits equal buckets, so a bucket is at
// most 1/2^sub_bits (3.1%) wider than its lower bound.
#include "internal.h"

#include <algorithm>

namespace cowsnap::detail {

namespace {
constexpr int sub_bits = LatencyHistogram::sub_bits;
constexpr std::uint64_t sub_buckets = std::uint64_t(1) << sub_bits;
}  // namespace

std::size_t LatencyHistogram::bucket_of(std::uint64_t ns) {
    ns = std::min(ns, max_trackable_ns);
    const int top = 63 - __builtin_clzll(ns | 1);  // floor(log2 ns)
    const int shift = std::max(0, top - sub_bits);
    return std::size_t(shift) * sub_buckets + std::size_t(ns >> shift);
}

std::uint64_t LatencyHistogram::lower_bound(std::size_t bucket) {
    if (bucket < 2 * sub_buckets) return bucket;
    const std::size_t shift = bucket / sub_buckets - 1;
    return std::uint64_t(bucket - shift * sub_buckets) << shift;
}

std::uint64_t LatencyHistogram::upper_bound(std::size_t bucket) {
    return bucket + 1 < buckets ? lower_bound(bucket + 1) : max_trackable_ns;
}

LatencyHistogram& LatencyHistogram::operator+=(const LatencyHistogram& other) {
    for (std::size_t b = 0; b < buckets; ++b) counts[b] += other.counts[b];
    total += other.total;
    max_ns = std::max(max_ns, other.max_ns);
    return *this;
}

// The least value at or above which no more than (1 - q) of the writes lie:
// the upper end of the bucket holding the q-th write, never above the max.
std::uint64_t LatencyHistogram::quantile_ns(double q) const {
    if (total == 0) return 0;
    const double rank = q * double(total);
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < buckets; ++b) {
        seen += counts[b];
        if (counts[b] && double(seen) >= rank) return std::min(upper_bound(b), max_ns);
    }
    return max_ns;
}

void put_latency(Result& result, const LatencyHistogram& histogram, const std::string& suffix) {
    if (histogram.total == 0) return;  // no write timed in this phase: no percentile
    auto& v = result.values;
    v["writes_timed" + suffix] = double(histogram.total);
    v["write_p50_s" + suffix] = double(histogram.quantile_ns(0.5)) * 1e-9;
    v["write_p99_s" + suffix] = double(histogram.quantile_ns(0.99)) * 1e-9;
    v["write_p999_s" + suffix] = double(histogram.quantile_ns(0.999)) * 1e-9;
    v["write_max_s" + suffix] = double(histogram.max_ns) * 1e-9;
    const std::string phase = suffix.empty() ? "all" : suffix.substr(1);
    for (std::size_t b = 0; b < LatencyHistogram::buckets; ++b)
        if (histogram.counts[b]) {
            result.latency_phase.push_back(phase);
            result.latency_ns.push_back(double(LatencyHistogram::lower_bound(b)));
            result.latency_writes.push_back(double(histogram.counts[b]));
        }
}

}  // namespace cowsnap::detail
