#pragma once
// What every trellis-sim command shares: the machine by name, the run flags (--machine, --timing-only,
// --json, --trace), host or shape-only HBM tensors of a dtype chosen at run time, and printing a run's
// report as a table or as JSON.

#include <cstdio>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <type_traits>
#include <vector>

#include <trellis/systolic/core.hpp>
#include <trellis/systolic/hbm.hpp>
#include <trellis/systolic/machine.hpp>
#include <trellis/systolic/timing/bound.hpp>

#include "arguments.hpp"

namespace trellis_sim {

namespace sys = trellis::systolic;

inline const sys::machine_spec& machine_by_name(const std::string& name) {
  if (name == "trn1") return sys::trn1::spec;
  if (name == "trn2") return sys::trn2::spec;
  if (name == "trn3") return sys::trn3::spec;
  throw usage_error("--machine must be trn1, trn2 or trn3, got '" + name + "'");
}

/// A core of the machine `spec` names (a trn1, trn2 or trn3 object: kernels written for core<Machine>
/// recover the type with with_machine_core).
inline std::unique_ptr<sys::core_state> make_core(const sys::machine_spec& spec, sys::core_options options) {
  if (&spec == &sys::trn1::spec) return std::make_unique<sys::core<sys::trn1>>(options);
  if (&spec == &sys::trn2::spec) return std::make_unique<sys::core<sys::trn2>>(options);
  return std::make_unique<sys::core<sys::trn3>>(options);
}

/// Calls f(core<Machine>&) for a core made by make_core.
template <class F>
void with_machine_core(sys::core_state& nc, F&& f) {
  if (&nc.spec() == &sys::trn1::spec) return f(static_cast<sys::core<sys::trn1>&>(nc));
  if (&nc.spec() == &sys::trn2::spec) return f(static_cast<sys::core<sys::trn2>&>(nc));
  return f(static_cast<sys::core<sys::trn3>&>(nc));
}

inline sys::dtype dtype_by_name(const std::string& flag, const std::string& name) {
  if (name == "bf16") return sys::dtype::bf16;
  if (name == "fp32") return sys::dtype::f32;
  if (name == "fp16") return sys::dtype::f16;
  if (name == "fp8" || name == "fp8_e4m3") return sys::dtype::f8e4m3;
  if (name == "fp8_e5m2") return sys::dtype::f8e5m2;
  throw usage_error("--" + flag + " must be bf16, fp32, fp16, fp8 (= fp8_e4m3) or fp8_e5m2, got '" + name + "'");
}

/// --dtype (default `input_default`) and --out-dtype (default: the input's), both fp32 or bf16 (`what` names
/// the operands in the error).
inline std::pair<sys::dtype, sys::dtype> read_f32_bf16_dtypes(arguments& args, const char* input_default,
                                                              const std::string& what) {
  const sys::dtype in = dtype_by_name("dtype", args.text("dtype", input_default));
  const sys::dtype out = args.has("out-dtype") ? dtype_by_name("out-dtype", args.text("out-dtype", "")) : in;
  for (sys::dtype t : {in, out})
    if (t != sys::dtype::f32 && t != sys::dtype::bf16) throw usage_error(what);
  return {in, out};
}

/// The flags of a single run.
struct run_flags {
  const sys::machine_spec* machine;
  bool timing_only;
  bool json;
  std::string trace;  ///< empty: no trace
};

inline run_flags read_run_flags(arguments& args) {
  return {&machine_by_name(args.text("machine", "trn2")), args.flag("timing-only"), args.flag("json"),
          args.text("trace", "")};
}

/// Host memory behind the HBM tensors of a functional run (random values in [-1, 1], fixed seed), or
/// nothing for a timing-only run (shape-only tensors).
class host_tensors {
 public:
  explicit host_tensors(bool functional) : functional_(functional) {}

  /// A [rows, cols] HBM tensor of `type`.
  sys::region make(sys::dtype type, std::size_t rows, std::size_t cols, bool writable) {
    return with_type(type, [&]<class T>() -> sys::region {
      if (!functional_) {
        if (writable) return sys::hbm<T>::shape_only({rows, cols});
        return sys::hbm<const T>::shape_only({rows, cols});
      }
      auto& storage = buffers_.emplace_back(rows * cols * sizeof(T));
      T* data = reinterpret_cast<T*>(storage.data());
      std::uniform_real_distribution<float> d(-1.0f, 1.0f);
      for (std::size_t i = 0; i < rows * cols; ++i) data[i] = T(d(rng_));
      return sys::hbm<T>{{data, {rows, cols}}};
    });
  }

  template <class F>
  static sys::region with_type(sys::dtype type, F&& f) {
    switch (type) {
      case sys::dtype::f32: return f.template operator()<float>();
      case sys::dtype::bf16: return f.template operator()<trellis::bf16>();
      case sys::dtype::f16: return f.template operator()<sys::f16>();
      case sys::dtype::f8e4m3: return f.template operator()<sys::f8e4m3>();
      case sys::dtype::f8e5m2: return f.template operator()<sys::f8e5m2>();
    }
    return {};
  }

 private:
  bool functional_;
  std::mt19937 rng_{2024};
  std::vector<std::vector<std::byte>> buffers_;
};

/// A typed view of a [rows, cols] HBM region made by host_tensors (shape-only when it has no memory).
template <class T>
sys::hbm<T> typed_hbm(const sys::region& r) {
  using value = std::remove_const_t<T>;
  if (!r.origin) return sys::hbm<T>::shape_only({r.rows, r.cols});
  return sys::hbm<T>{{reinterpret_cast<T*>(reinterpret_cast<value*>(r.origin)), {r.rows, r.cols}}};
}

/// Prints a finished run: the report as a table (after `headline`) or as one JSON object holding the
/// command's own `fields`, the summary keys and the whole report; writes the trace if asked.
inline void print_run(const sys::core_state& nc, const run_flags& flags, const std::string& headline,
                      const std::string& json_fields) {
  const sys::timing::report r = nc.report();
  const sys::timing::bound b = sys::timing::bounding_resource(r);
  if (!flags.trace.empty()) nc.write_trace(flags.trace);
  if (!flags.json) {
    std::printf("%s\n%s", headline.c_str(), r.table().c_str());
    std::printf("bound by %s (busy %.1f %% of the run)\n", b.resource.c_str(), 100 * b.busy_fraction);
    if (!flags.trace.empty()) std::printf("trace written to %s (open it in ui.perfetto.dev)\n", flags.trace.c_str());
    return;
  }
  const auto num = [](double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return std::string(buf);
  };
  std::string j = "{" + json_fields + ",\"machine\":\"" + r.machine + "\",\"time_ns\":" + num(r.total_ns) +
                  ",\"mfu\":" + num(r.mfu) + ",\"hfu\":" + num(r.hfu) +
                  ",\"hbm_bytes\":" + num(r.hbm_read_bytes + r.hbm_written_bytes) + ",\"mbu\":" + num(r.mbu) +
                  ",\"bound\":\"" + b.resource + "\",\"engines\":{";
  for (std::size_t i = 0; i < r.engines.size(); ++i)
    j += (i ? ",\"" : "\"") + r.engines[i].name + "\":{\"busy_ns\":" + num(r.engines[i].busy_ns) +
         ",\"utilization\":" + num(r.engines[i].utilisation) + ",\"instructions\":" +
         std::to_string(r.engines[i].instructions) + "}";
  j += "},\"report\":" + r.json() + "}";
  std::printf("%s\n", j.c_str());
}

}  // namespace trellis_sim
