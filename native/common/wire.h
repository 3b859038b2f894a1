// Params and Result as text lines between the processes (wire.cpp): the
// library sends a point's Params to the benchmark and reads back its Result.
#pragma once

#include "cowsnap.h"

#include <string>

namespace cowsnap::detail {

std::string params_to_text(const Params& params);
Params params_from_text(const std::string& text);
std::string result_to_text(const Result& result);
Result result_from_text(const std::string& text);  // status "failed" if incomplete

}  // namespace cowsnap::detail
