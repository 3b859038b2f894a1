// A point's method and backing by name, parsed once per run: the rest of
// the benchmark asks the enums and the Snapshot, never the names.
#include "internal.h"

namespace cowsnap::detail {

Method method_of(const std::string& name) {
    if (name == "none") return Method::none;
    if (name == "fork") return Method::fork;
    if (name == "uffd") return Method::uffd;
    if (name == "stop") return Method::stop;
    throw std::invalid_argument("method=" + name + ": not a method of the benchmark");
}

Backing backing_of(const std::string& name) {
    if (name == "4k") return {Backing::base_pages};
    if (name == "thp") return {Backing::thp};
    if (name == "hugetlb-2m" || name == "hugetlb-1g") return {Backing::hugetlb};
    if (name.rfind("mthp-", 0) == 0) return {Backing::mthp, std::stol(name.substr(5))};
    throw std::invalid_argument("backing=" + name + ": not a backing of the benchmark");
}

std::unique_ptr<Snapshot> make_snapshot(Method method, SnapshotContext context) {
    switch (method) {
        case Method::fork: return fork_snapshot(context);
        case Method::uffd: return uffd_snapshot(context);
        case Method::stop: return stop_snapshot(context);
        case Method::none: break;
    }
    return nullptr;
}

}  // namespace cowsnap::detail
