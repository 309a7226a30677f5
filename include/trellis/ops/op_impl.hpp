#pragma once
// op_impl<Op, Target>: the one customisation point every backend specialises, in its own folder.
// Front doors (matmul.hpp, attention.hpp, norm.hpp) validate once, then call op_impl<Op,
// Target>::run.
//
// The front doors take the target by forwarding reference and hand op_impl an lvalue: stateless targets
// (cpu, reference) take it as const&, the NeuronCore model (systolic::core) as a mutable reference,
// because running an op on it records and times instructions there.

namespace trellis {

template <class>
inline constexpr bool dependent_false_v = false;

template <class Op, class Target>
struct op_impl {
  static_assert(dependent_false_v<Target>,
                "trellis: this target does not provide this op (no op_impl<Op, Target> "
                "specialisation is visible: include the target's header, e.g. <trellis/cpu.hpp>)");
};

}  // namespace trellis
