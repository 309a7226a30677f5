#pragma once
// `trellis-sim tune <op>`: runs every candidate policy of a problem on its own timing-only core, spread
// over the machine's cores (the model is single-threaded, so independent runs scale), then ranks the ones
// that ran by simulated time and lists the ones the model rejected with the rule they break.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common.hpp"

namespace trellis_sim {

/// One policy to try: its parameters as (name, value) columns, and how to run it on a core.
struct candidate {
  std::vector<std::pair<std::string, std::string>> params;
  std::function<void(sys::core_state&)> run;  ///< on a core made by make_core (with_machine_core recovers its type)
};

/// Adds `candidate` unless one with the same params is there already (sweep lists may repeat a policy).
inline void add_unique(std::vector<candidate>& list, candidate c) {
  for (const candidate& o : list)
    if (o.params == c.params) return;
  list.push_back(std::move(c));
}

/// Every combination of the value lists, in order: f(values) for each.
inline void for_each_combination(const std::vector<std::vector<std::size_t>>& lists,
                                 const std::function<void(const std::vector<std::size_t>&)>& f) {
  std::vector<std::size_t> index(lists.size(), 0), values(lists.size());
  for (const auto& l : lists)
    if (l.empty()) return;
  while (true) {
    for (std::size_t i = 0; i < lists.size(); ++i) values[i] = lists[i][index[i]];
    f(values);
    std::size_t d = lists.size();
    while (d > 0 && ++index[d - 1] == lists[d - 1].size()) index[--d] = 0;
    if (d == 0) return;
  }
}

struct outcome {
  bool ran = false;
  std::string rule;  ///< why the model rejected the policy (its error message)
  double time_ns = 0, mfu = 0, mbu = 0;
  sys::timing::bound bound{};
};

/// Runs every candidate on a fresh timing-only core of `machine`, `threads` at a time.
inline std::vector<outcome> sweep(const sys::machine_spec& machine, const std::vector<candidate>& candidates,
                                  unsigned threads) {
  std::vector<outcome> results(candidates.size());
  std::atomic<std::size_t> next{0};
  const auto worker = [&] {
    for (std::size_t i = next++; i < candidates.size(); i = next++) {
      outcome& o = results[i];
      try {
        const auto nc = make_core(machine, {.functional = false});
        candidates[i].run(*nc);
        const sys::timing::report r = nc->report();
        o = {true, "", r.total_ns, r.mfu, r.mbu, sys::timing::bounding_resource(r)};
      } catch (const trellis::error& e) {
        o.rule = e.what();
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();
  return results;
}

inline std::string params_text(const candidate& c) {
  std::string s;
  for (const auto& [name, value] : c.params) s += (s.empty() ? "" : " ") + name + "=" + value;
  return s;
}

/// Prints the ranking (best `top` first) and the rejected policies; writes every outcome to `csv_path`.
inline void report_sweep(const std::string& headline, const std::vector<candidate>& candidates,
                         const std::vector<outcome>& results, std::size_t top, const std::string& csv_path) {
  std::vector<std::size_t> ran, rejected;
  for (std::size_t i = 0; i < results.size(); ++i) (results[i].ran ? ran : rejected).push_back(i);
  std::stable_sort(ran.begin(), ran.end(), [&](std::size_t a, std::size_t b) { return results[a].time_ns < results[b].time_ns; });
  std::printf("%s\n%zu policies: %zu ran, %zu rejected by the model's rules\n\n", headline.c_str(), results.size(),
              ran.size(), rejected.size());
  std::printf("%4s %12s %7s %7s  %-8s  %s\n", "rank", "time (us)", "MFU %", "MBU %", "bound", "policy");
  for (std::size_t r = 0; r < ran.size() && r < top; ++r) {
    const outcome& o = results[ran[r]];
    std::printf("%4zu %12.1f %7.1f %7.1f  %-8s  %s\n", r + 1, o.time_ns / 1e3, 100 * o.mfu, 100 * o.mbu, o.bound.resource.c_str(),
                params_text(candidates[ran[r]]).c_str());
  }
  if (!rejected.empty()) {
    std::printf("\nrejected (first %zu):\n", std::min<std::size_t>(rejected.size(), 10));
    for (std::size_t r = 0; r < rejected.size() && r < 10; ++r)
      std::printf("  %s\n    %s\n", params_text(candidates[rejected[r]]).c_str(), results[rejected[r]].rule.c_str());
  }
  if (csv_path.empty()) return;
  std::ofstream csv(csv_path);
  if (!csv) throw usage_error("cannot write --csv " + csv_path);
  csv << "rank";
  for (const auto& p : candidates.front().params) csv << ',' << p.first;
  csv << ",status,time_ns,mfu,mbu,bound,rule\n";
  const auto row = [&](std::size_t i, const std::string& rank) {
    const outcome& o = results[i];
    csv << rank;
    for (const auto& p : candidates[i].params) csv << ',' << p.second;
    std::string rule = o.rule;
    std::replace(rule.begin(), rule.end(), '"', '\'');
    csv << ',' << (o.ran ? "ran" : "rejected") << ',' << (o.ran ? std::to_string(o.time_ns) : "") << ','
        << (o.ran ? std::to_string(o.mfu) : "") << ',' << (o.ran ? std::to_string(o.mbu) : "") << ','
        << (o.ran ? o.bound.resource : "") << ",\"" << rule << "\"\n";
  };
  for (std::size_t r = 0; r < ran.size(); ++r) row(ran[r], std::to_string(r + 1));
  for (std::size_t i : rejected) row(i, "");
  std::printf("\nall %zu outcomes written to %s\n", results.size(), csv_path.c_str());
}

/// Threads for a sweep: --threads, else every core of this machine.
inline unsigned sweep_threads(arguments& args) {
  const unsigned all = std::max(1u, std::thread::hardware_concurrency());
  return static_cast<unsigned>(args.size("threads", all));
}

}  // namespace trellis_sim
