// Params and Result as text, one line a field, between the Python-side
// library and the benchmark process: "key<TAB>value".
#include "wire.h"

#include <cmath>
#include <cstdio>
#include <sstream>

namespace cowsnap::detail {

namespace {

// Every Params field, by its config key (params.def).
template <class Visit>
void each_field(Params& p, Visit visit) {
#define COWSNAP_PARAM(type, name) visit(#name, p.name);
#include "params.def"
#undef COWSNAP_PARAM
}

std::string number(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%.17g", value);
    return text;
}

std::string one_line(std::string text) {
    for (char& c : text)
        if (c == '\n' || c == '\t') c = ' ';
    return text;
}

void parse(const std::string& text, long& out) { out = std::stol(text); }
void parse(const std::string& text, int& out) { out = std::stoi(text); }
void parse(const std::string& text, double& out) { out = std::stod(text); }
void parse(const std::string& text, bool& out) { out = text == "1"; }
void parse(const std::string& text, std::string& out) { out = text; }

std::string show(long value) { return std::to_string(value); }
std::string show(int value) { return std::to_string(value); }
std::string show(double value) { return number(value); }
std::string show(bool value) { return value ? "1" : "0"; }
std::string show(const std::string& value) { return one_line(value); }

// Every Result field, by its name (result.def).
template <class R, class Visit>
void each_result_field(R& r, Visit visit) {
#define COWSNAP_RESULT(kind, name) visit(#name, r.name);
#include "result.def"
#undef COWSNAP_RESULT
}

// A field's lines, "name<TAB>...": one for a text, one per entry otherwise
// (non-finite numbers left out: absent, never a made-up value).
void write_lines(std::string& text, const char* name, const result_kind::text& value) {
    text += std::string(name) + "\t" + one_line(value) + "\n";
}
void write_lines(std::string& text, const char* name, const result_kind::numbers& values) {
    for (const auto& [key, value] : values)
        if (std::isfinite(value)) text += std::string(name) + "\t" + key + "\t" + number(value) + "\n";
}
void write_lines(std::string& text, const char* name, const result_kind::texts& values) {
    for (const auto& [key, value] : values) text += std::string(name) + "\t" + key + "\t" + one_line(value) + "\n";
}
void write_lines(std::string& text, const char* name, const result_kind::series& values) {
    for (const double value : values) text += std::string(name) + "\t" + number(value) + "\n";
}
void write_lines(std::string& text, const char* name, const result_kind::labels& values) {
    for (const auto& value : values) text += std::string(name) + "\t" + one_line(value) + "\n";
}

// One line's fields after the name, into the field.
void read_line(const std::vector<std::string>& f, result_kind::text& out) { out = f.size() > 1 ? f[1] : ""; }
void read_line(const std::vector<std::string>& f, result_kind::numbers& out) {
    if (f.size() == 3) out[f[1]] = std::stod(f[2]);
}
void read_line(const std::vector<std::string>& f, result_kind::texts& out) {
    if (f.size() >= 2) out[f[1]] = f.size() == 3 ? f[2] : "";
}
void read_line(const std::vector<std::string>& f, result_kind::series& out) {
    if (f.size() == 2) out.push_back(std::stod(f[1]));
}
void read_line(const std::vector<std::string>& f, result_kind::labels& out) { out.push_back(f.size() > 1 ? f[1] : ""); }

// Splits "a<TAB>b<TAB>c" into its fields.
std::vector<std::string> fields(const std::string& line) {
    std::vector<std::string> out;
    std::stringstream parts(line);
    std::string part;
    while (std::getline(parts, part, '\t')) out.push_back(part);
    return out;
}

}  // namespace

std::string params_to_text(const Params& params) {
    std::string text;
    each_field(const_cast<Params&>(params),
               [&](const char* key, const auto& value) { text += std::string(key) + "\t" + show(value) + "\n"; });
    return text;
}

Params params_from_text(const std::string& text) {
    std::map<std::string, std::string> given;
    std::stringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        const auto tab = line.find('\t');
        if (tab != std::string::npos) given[line.substr(0, tab)] = line.substr(tab + 1);
    }
    Params params{};
    each_field(params, [&](const char* key, auto& value) {
        if (!given.count(key)) throw std::runtime_error(std::string("params: missing ") + key);
        parse(given[key], value);
    });
    return params;
}

std::string result_to_text(const Result& result) {
    std::string text;
    each_result_field(result, [&](const char* name, const auto& field) { write_lines(text, name, field); });
    return text + "end\n";  // a result cut short has no end line
}

Result result_from_text(const std::string& text) {
    Result result;
    bool complete = false;
    std::stringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
        const auto f = fields(line);
        if (f.empty()) continue;
        if (f[0] == "end") complete = true;
        each_result_field(result, [&](const char* name, auto& field) {
            if (f[0] == name) read_line(f, field);
        });
    }
    if (!complete) {
        result.status = "failed";
        if (result.reason.empty()) result.reason = "the benchmark process ended without a complete result";
    }
    return result;
}

}  // namespace cowsnap::detail

namespace cowsnap {

std::string params_text(const Params& params) { return detail::params_to_text(params); }

Result result_from_output(const std::string& output) { return detail::result_from_text(output); }

}  // namespace cowsnap
