// trellis-sim: the NeuronCore model from the command line — run a kernel and print its report (table or
// JSON) and trace, or sweep its tile policies (`tune`). docs/systolic-model.md shows how to read both.
//
//   trellis-sim matmul --machine trn1 --m 4096 --k 8192 --n 8192 --dtype bf16 --variant blocked --timing-only
//   trellis-sim tune matmul --machine trn2 --m 4096 --k 8192 --n 8192 --csv sweep.csv

#include <cstdio>
#include <exception>
#include <string>

#include "attention_command.hpp"
#include "matmul_command.hpp"
#include "norm_command.hpp"

namespace {

const char* overview =
    "trellis-sim: run kernels on the Trellis NeuronCore model\n"
    "  trellis-sim matmul|attention|layernorm|rmsnorm ...        one run: report (table or --json), --trace FILE\n"
    "  trellis-sim tune matmul|attention|layernorm|rmsnorm ...   sweep tile policies (timing-only, all cores), ranked\n"
    "  trellis-sim help [command]\n\n";

int dispatch(int argc, char** argv) {
  using namespace trellis_sim;
  const std::string command = argc > 1 ? argv[1] : "";
  using sys::kernels::norm_kind;
  if (command == "matmul" || command == "attention" || command == "layernorm" || command == "rmsnorm") {
    arguments args(argc, argv, 2);
    if (command == "matmul") return run_matmul(args);
    if (command == "attention") return run_attention_command(args);
    return run_norm_command(args, command == "layernorm" ? norm_kind::layer : norm_kind::rms);
  }
  if (command == "tune") {
    const std::string op = argc > 2 ? argv[2] : "";
    arguments args(argc, argv, 3);
    if (op == "matmul") return tune_matmul(args);
    if (op == "attention") return tune_attention(args);
    if (op == "layernorm" || op == "rmsnorm") return tune_norm(args, op == "layernorm" ? norm_kind::layer : norm_kind::rms);
    throw usage_error("tune: unknown op '" + op + "' (matmul, attention, layernorm, rmsnorm)");
  }
  if (command == "help" || command == "--help" || command == "-h") {
    std::printf("%s%s%s%s", overview, matmul_usage, attention_usage, norm_usage);
    return 0;
  }
  throw usage_error(command.empty() ? "no command given" : "unknown command '" + command + "'");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return dispatch(argc, argv);
  } catch (const trellis_sim::usage_error& e) {
    std::fprintf(stderr, "trellis-sim: %s\n\n%s%s%s%s", e.what(), overview, trellis_sim::matmul_usage,
                 trellis_sim::attention_usage, trellis_sim::norm_usage);
    return 2;
  } catch (const trellis::error& e) {
    std::fprintf(stderr, "trellis-sim: the model rejected the kernel: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "trellis-sim: %s\n", e.what());
    return 1;
  }
}
