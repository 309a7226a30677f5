#pragma once
// core<Machine>: one simulated NeuronCore — its SBUF and PSUM, the instruction log, and whether it
// computes values (functional) or only validates and records (timing-only, for fast tile sweeps).
//
//   systolic::core<systolic::trn2> nc;                      // functional, NaN-filled fresh tiles
//   systolic::core<systolic::trn2> sweep{{.functional = false}};
//
// Instructions (isa.hpp) validate against the machine, compute (when functional), then call issue()
// with their record: the one place a scheduler attaches, so kernels do not change when timing comes.

#include <cstddef>
#include <memory>
#include <mutex>
#include <source_location>
#include <string>
#include <utility>
#include <vector>

#include "trellis/systolic/hbm_memory.hpp"
#include "trellis/systolic/machine.hpp"
#include "trellis/systolic/on_chip_memory.hpp"
#include "trellis/systolic/records.hpp"
#include "trellis/systolic/timing/report.hpp"
#include "trellis/systolic/timing/scheduler.hpp"
#include "trellis/systolic/timing/trace.hpp"

namespace trellis::systolic {

struct core_options {
  bool functional = true;  ///< false: timing-only — no storage, nothing computed, HBM may be shape-only
  bool nan_fill = true;    ///< fill fresh tiles with NaN sentinels (functional cores only)
  timing::timing_options timing{};  ///< scheduler options (e.g. Tensor Engine throttling)
};

namespace detail {

/// Storage for the operands of a core's records: blocks that never move, so that records can view them.
class operand_store {
 public:
  operand_store() = default;
  operand_store(operand_store&& o) noexcept
      : blocks_(std::move(o.blocks_)), block_(std::exchange(o.block_, 0)), next_(std::exchange(o.next_, nullptr)),
        end_(std::exchange(o.end_, nullptr)) {}
  operand_store& operator=(operand_store&& o) noexcept {
    blocks_ = std::move(o.blocks_);
    block_ = std::exchange(o.block_, 0);
    next_ = std::exchange(o.next_, nullptr);
    end_ = std::exchange(o.end_, nullptr);
    return *this;
  }

  /// Room for n contiguous operands (not yet committed).
  operand_record* reserve(std::size_t n) {
    if (std::size_t(end_ - next_) < n) next_block(n);
    return next_;
  }
  void commit(std::size_t n) noexcept { next_ += n; }
  /// Bytes held.
  std::size_t bytes() const noexcept {
    std::size_t n = 0;
    for (const block& b : blocks_) n += b.size * sizeof(operand_record);
    return n;
  }
  void clear() noexcept {
    block_ = 0;
    next_ = end_ = nullptr;
    if (!blocks_.empty()) {
      next_ = blocks_[0].data.get();
      end_ = next_ + blocks_[0].size;
    }
  }

 private:
  static constexpr std::size_t block_operands = 8192;
  struct block {
    std::unique_ptr<operand_record[]> data;
    std::size_t size;
  };
  void next_block(std::size_t n) {
    const std::size_t size = n > block_operands ? n : block_operands;
    if (next_ != nullptr) ++block_;
    while (block_ < blocks_.size() && blocks_[block_].size < size) ++block_;  // (only a huge record skips)
    if (block_ == blocks_.size()) blocks_.push_back({std::make_unique_for_overwrite<operand_record[]>(size), size});
    next_ = blocks_[block_].data.get();
    end_ = next_ + blocks_[block_].size;
  }
  std::vector<block> blocks_;
  std::size_t block_ = 0;
  operand_record* next_ = nullptr;
  operand_record* end_ = nullptr;
};

/// The logs of a core — instruction records, their operands, the timeline — emptied, with their capacity.
struct log_storage {
  std::vector<instruction_record> records;
  operand_store operands;
  timing::scheduler::storage timeline;

  std::size_t bytes() const noexcept {
    return records.capacity() * sizeof(instruction_record) + operands.bytes() + timeline.bytes();
  }
};

/// Log storage recycling. A big run logs tens of MB (the tutorial matmul: 99,328 instructions, ≈ 70 MB),
/// and fresh memory costs a page fault per 4 KiB — on the machine of the measurements more than the
/// simulation itself. A core therefore hands its emptied logs, with their capacity, to the next core
/// created in the process (a tile sweep runs one core after another). At most one set of at most
/// log_cache_max_bytes is kept; release_log_cache() frees it.
inline constexpr std::size_t log_cache_max_bytes = std::size_t{256} << 20;

struct log_cache {
  std::mutex mutex;
  log_storage storage;
  bool held = false;

  static log_cache& instance() {
    static log_cache* cache = new log_cache;  // never destroyed: cores may outlive static destruction
    return *cache;
  }
  log_storage take() {
    std::lock_guard<std::mutex> lock(mutex);
    if (!held) return {};
    held = false;
    return std::move(storage);
  }
  void give(log_storage&& s) noexcept {
    if (s.bytes() > log_cache_max_bytes) return;
    std::lock_guard<std::mutex> lock(mutex);
    if (held && storage.bytes() >= s.bytes()) return;  // keep the larger set
    storage = std::move(s);
    held = true;
  }
};

}  // namespace detail

/// Frees the log storage kept for the next core (see detail::log_cache).
inline void release_log_cache() { (void)detail::log_cache::instance().take(); }

/// The machine-independent state of a core; instructions work on this.
class core_state {
 public:
  core_state(const machine_spec& spec, core_options options)
      : sbuf(memory_space::sbuf, spec, options.functional, options.nan_fill),
        psum(memory_space::psum, spec, options.functional, options.nan_fill),
        hbm(spec, options.functional),
        spec_(&spec),
        options_(options),
        scheduler_(spec, options.timing) {
    detail::log_storage reused = detail::log_cache::instance().take();
    records_ = std::move(reused.records);
    operands_ = std::move(reused.operands);
    scheduler_.adopt_storage(std::move(reused.timeline));
  }
  ~core_state() {
    records_.clear();
    operands_.clear();
    detail::log_cache::instance().give({std::move(records_), std::move(operands_), scheduler_.release_storage()});
  }
  core_state(const core_state&) = delete;
  core_state& operator=(const core_state&) = delete;

  on_chip_memory sbuf;
  on_chip_memory psum;
  hbm_memory hbm;  ///< the core's share of device HBM: nc.hbm.tensor<T>(shape)

  const machine_spec& spec() const noexcept { return *spec_; }
  bool functional() const noexcept { return options_.functional; }
  const core_options& options() const noexcept { return options_; }

  /// Every instruction executed so far, in issue order.
  const std::vector<instruction_record>& records() const noexcept { return records_; }
  /// Forgets the instruction log and the timeline (the memories keep their tiles).
  void clear_records() {
    records_.clear();
    operands_.clear();
    scheduler_.clear();
  }

  /// Called by every instruction once it has validated (and, when functional, computed): logs it and
  /// times it on its engine's stream (timing/scheduler.hpp).
  void issue(instruction_record record) {
    operand_record* stored = operands_.reserve(record.operands.size());
    for (std::size_t i = 0; i < record.operands.size(); ++i) stored[i] = record.operands[i];
    record.operands = operand_list::view(stored, record.operands.size());
    records_.push_back(std::move(record));
    operands_.commit(records_.back().operands.size());
    finish_issue();
  }

  /// The instructions' fast path to issue(): begin_issue() appends a record (its operands stored by the
  /// core), the instruction fills it in and adds at most operand_capacity operands with add_operand(),
  /// then calls finish_issue(). Nothing between the two may throw.
  static constexpr std::size_t operand_capacity = 8;
  instruction_record& begin_issue(engine unit, opcode op, std::source_location where) {
    operand_record* stored = operands_.reserve(operand_capacity);
    instruction_record& r = records_.emplace_back();
    r.unit = unit;
    r.op = op;
    r.where = where;
    r.operands = operand_list::view(stored, 0);
    return r;
  }
  void add_operand(const operand_record& o) noexcept { records_.back().operands.append_in_place(o); }
  /// add_operand(describe(role, a, written)), written in place.
  void add_operand(operand_role role, const region& a, bool written) noexcept {
    describe_into(records_.back().operands.append_in_place(), role, to_string(role), a, written);
  }
  void finish_issue() {
    instruction_record& r = records_.back();
    operands_.commit(r.operands.size());
    r.index = issued_++;
    scheduler_.schedule(r);
    scheduler_.sample_occupancy(sbuf.bytes_in_use(), psum.bytes_in_use());
  }

  /// The timing of every instruction, parallel to records().
  const timing::scheduler& timeline() const noexcept { return scheduler_; }
  /// When the last result is visible, in ns since the first instruction could start.
  double total_ns() const noexcept { return scheduler_.total_ns(); }
  /// Total time, per-engine cycles/busy/utilisation/stalls, MFU/HFU, HBM traffic/MBU, SBUF/PSUM peaks.
  timing::report report() const {
    return timing::make_report(*spec_, records_, scheduler_, sbuf.peak_bytes(), sbuf.capacity_bytes(), psum.peak_bytes(),
                               psum.capacity_bytes());
  }
  /// The run as a Chrome Trace Event JSON file (ui.perfetto.dev).
  void write_trace(const std::string& path, timing::trace_options options = {}) const {
    timing::write_trace(path, *spec_, records_, scheduler_, options);
  }

  /// The DMA queue a dma_copy without an explicit queue uses: round-robin over the machine's queues.
  int next_dma_queue() noexcept {
    const int q = static_cast<int>(next_queue_);
    next_queue_ = (next_queue_ + 1) % spec_->dma.queues;
    return q;
  }

 private:
  const machine_spec* spec_;
  core_options options_;
  std::vector<instruction_record> records_;
  detail::operand_store operands_;
  timing::scheduler scheduler_;
  std::uint64_t issued_ = 0;
  std::size_t next_queue_ = 0;
};

template <machine Machine>
class core : public core_state {
 public:
  using machine_type = Machine;
  explicit core(core_options options = {}) : core_state(Machine::spec, options) {}
};

}  // namespace trellis::systolic
