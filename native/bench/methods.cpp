// A point's backing by name, parsed once per run, and its method's
// Snapshot by name from the methods the methods' own files registered: the
// rest of the benchmark asks the enum and the Snapshot, never the names.
#include "internal.h"

#include <map>

namespace cowsnap::detail {

namespace {
// Filled by the methods' files before main() (static initializers): a
// function's static, so it exists before the first of them runs.
std::map<std::string, SnapshotFactory>& registry() {
    static std::map<std::string, SnapshotFactory> methods;
    return methods;
}
}  // namespace

bool register_method(const char* name, SnapshotFactory factory) {
    return registry().emplace(name, factory).second;
}

Backing backing_of(const std::string& name) {
    if (name == "4k") return {Backing::base_pages};
    if (name == "thp") return {Backing::thp};
    if (name == "hugetlb-2m" || name == "hugetlb-1g") return {Backing::hugetlb};
    if (name.rfind("mthp-", 0) == 0) return {Backing::mthp, std::stol(name.substr(5))};
    throw std::invalid_argument("backing=" + name + ": not a backing of the benchmark");
}

std::unique_ptr<Snapshot> make_snapshot(const std::string& method, SnapshotContext context) {
    if (method == "none") return nullptr;
    const auto found = registry().find(method);
    if (found == registry().end()) throw std::invalid_argument("method=" + method + ": not a method of the benchmark");
    return found->second(context);
}

}  // namespace cowsnap::detail
