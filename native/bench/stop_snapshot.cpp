// Stop the world: the writers wait while the copiers copy the array, then
// go on with no protection and no fault left behind.
//
// Expected cost: the copy itself, array bytes / memory bandwidth, all of it
// a pause of the writers; nothing after. The lower bound on snapshot work
// and the upper bound on pause.
#include "internal.h"

namespace cowsnap::detail {

namespace {

class StopSnapshot : public Snapshot {
public:
    explicit StopSnapshot(SnapshotContext context) : c_(context) {}

    void prepare() override {
        const std::size_t batch = std::size_t(c_.params.batch_kib) * 1024;
        copiers_ = std::make_unique<Copiers>(
            c_.params, batch_count(c_.params, c_.array),
            [this, batch](std::size_t b) {
                if (began_) copy_batch(c_.array, c_.dest.data, batch, b);
            },
            c_.query_copies);
        if (std::string error = copiers_->placement_error(); !error.empty()) throw NotApplied(error);
    }

    // The whole copy happens here, while the writers wait.
    void begin() override {
        if (c_.params.dest == "fresh") c_.dest = allocate_destination(c_.params, c_.array, false);
        began_ = true;
        copiers_->start();
        copiers_->join();
        done_ = mark_now();
    }

    Mark end() override { return done_; }

    // They wait by design: begin() copies the whole array.
    bool writers_wait() const override { return true; }

    void report(Result& result) override {
        check_copy_in_parent(c_, result, "snapshot inconsistent: the copy differs from the array");
    }

private:
    SnapshotContext c_;
    std::unique_ptr<Copiers> copiers_;
    std::atomic<bool> began_{false};
    Mark done_;
};

COWSNAP_METHOD("stop", StopSnapshot);

}  // namespace

}  // namespace cowsnap::detail
