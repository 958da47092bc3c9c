// NSR's per-step work on the CPU in one call (built on first use by trials/nsr.py:cpu_kernel()).
//
// Why C++: on a 2-core CPU every PyTorch op in the training step costs 5-15 us of dispatch, cold
// after the big GEMMs, and the PyTorch version of one NSR step (queue update, class means, penalty,
// its backward, the add to the loss) is about ten of them: +11 % on an MLP-4 step. Here the same
// arithmetic is one pass over the batch and one autograd node: +3 %.
//
// The arithmetic is exactly ClassMeanQueue.push + sample_means + nsr_penalty in trials/nsr.py,
// on the same state tensors, so the two paths can be swapped at any step:
//   ring  (M, J, N + K) float32: per batch slot m and class j, the response sums then the counts
//         (K = 1 count per class, or K = N per-neuron counts of active responses for ReLU layers)
//   total (J, N + K): the sum of the M slots, kept by "subtract the slot overwritten, add the new"
//   penalty = weight * mean over the responses that count of (x - mu_y)^2, mu detached.

#include <torch/csrc/autograd/functions/utils.h>
#include <torch/extension.h>

#include <algorithm>
#include <cstdint>
#include <vector>

using torch::Tensor;
using torch::autograd::variable_list;

namespace {

// Pushes (x, y) into slot `slot` of the ring, then writes d(penalty)/dx = scale * (x - mu_y) into
// `grad` (0 where a ReLU response is inactive) and returns the penalty, both including `weight`.
double push_and_penalize(const Tensor& x, const Tensor& y, Tensor& ring, Tensor& total,
                         int64_t slot, bool relu, bool resync, double weight, Tensor& grad) {
  const int64_t batch = x.size(0), neurons = x.size(1);
  const int64_t slots = ring.size(0), classes = ring.size(1), width = ring.size(2);
  const float* xp = x.data_ptr<float>();
  const int64_t* yp = y.data_ptr<int64_t>();
  float* ring_p = ring.data_ptr<float>();
  float* tot = total.data_ptr<float>();
  float* cur = ring_p + slot * classes * width;
  const int64_t cells = classes * width;

  for (int64_t i = 0; i < cells; ++i) tot[i] -= cur[i];  // drop the oldest batch
  std::fill(cur, cur + cells, 0.f);
  int64_t active = 0;  // responses that count: all, or the nonzero ones of a ReLU layer
  for (int64_t b = 0; b < batch; ++b) {
    float* row = cur + yp[b] * width;  // (N + K) sums then counts of class y_b
    const float* xb = xp + b * neurons;
    for (int64_t n = 0; n < neurons; ++n) row[n] += xb[n];
    if (relu) {
      int64_t on = 0;
      for (int64_t n = 0; n < neurons; ++n) {
        const float a = xb[n] != 0.f ? 1.f : 0.f;
        row[neurons + n] += a;
        on += static_cast<int64_t>(a);
      }
      active += on;
    } else {
      row[neurons] += 1.f;
    }
  }
  if (!relu) active = batch * neurons;
  if (resync) {  // rebuild the totals from the ring: float32 drift over many add/subtract pairs
    std::fill(tot, tot + cells, 0.f);
    for (int64_t m = 0; m < slots; ++m) {
      const float* r = ring_p + m * cells;
      for (int64_t i = 0; i < cells; ++i) tot[i] += r[i];
    }
  } else {
    for (int64_t i = 0; i < cells; ++i) tot[i] += cur[i];
  }

  // Class means mu (J, N) once, so the per-response loop below is branch-free and vectorizes.
  // A class or neuron with no response in the window has no mean; no counted response uses it.
  std::vector<float> mean(classes * neurons);
  for (int64_t j = 0; j < classes; ++j) {
    const float* t = tot + j * width;
    float* mu = mean.data() + j * neurons;
    for (int64_t n = 0; n < neurons; ++n) {
      const float c = relu ? t[neurons + n] : t[neurons];
      mu[n] = c > 0.f ? t[n] / c : 0.f;
    }
  }

  // The official code's scale: a mean over B*N (ReLU: over the active responses only).
  const double denom = static_cast<double>(std::max<int64_t>(active, 1));
  const float scale = static_cast<float>(2.0 * weight / denom);
  float* gp = grad.data_ptr<float>();
  double squares = 0.0;
  for (int64_t b = 0; b < batch; ++b) {
    const float* mu = mean.data() + yp[b] * neurons;
    const float* xb = xp + b * neurons;
    float* gb = gp + b * neurons;
    float row_squares = 0.f;
    for (int64_t n = 0; n < neurons; ++n) {
      float d = xb[n] - mu[n];
      if (relu) d = xb[n] != 0.f ? d : 0.f;  // inactive: neither in the means nor penalized
      row_squares += d * d;
      gb[n] = scale * d;
    }
    squares += row_squares;
  }
  return weight * squares / denom;
}

// The autograd node of "loss + weight * penalty(x)": a plain Node, not an autograd::Function —
// no context object, no saved-variable map, no output wrapping; ~10 us less per step, measured.
struct PenaltyBackward : public torch::autograd::Node {
  Tensor grad;  // (B, N) d(weight * penalty)/dx

  variable_list apply(variable_list&& grads) override {
    const Tensor& go = grads[0];  // () d(objective)/d(loss + penalty), 1 from loss.backward()
    // The usual loss.backward() seeds 1: skip the multiply, one op fewer on the hot path.
    const bool one = go.is_cpu() && go.scalar_type() == torch::kFloat32 && go.numel() == 1 &&
                     go.data_ptr<float>()[0] == 1.f;
    return {go, one ? grad : grad * go};  // d/d loss, d/dx
  }

  std::string name() const override { return "NSRPenaltyBackward"; }
};

Tensor add_penalty(const Tensor& loss, const Tensor& x, const Tensor& y_in, Tensor ring,
                   Tensor total, int64_t slot, bool relu, bool resync, double weight) {
  const Tensor y = y_in.contiguous();
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && x.dim() == 2,
              "x must be a (B, N) float32 CPU tensor");
  TORCH_CHECK(loss.device().is_cpu() && loss.scalar_type() == torch::kFloat32 &&
                  loss.numel() == 1,
              "loss must be a float32 CPU scalar");
  TORCH_CHECK(ring.device().is_cpu() && total.device().is_cpu(), "the queue must be on the CPU");
  TORCH_CHECK(y.device().is_cpu() && y.scalar_type() == torch::kInt64 && y.dim() == 1 &&
                  y.size(0) == x.size(0),
              "y must be (B,) int64 on the CPU, B = ", x.size(0));
  const int64_t neurons = x.size(1);
  TORCH_CHECK(ring.scalar_type() == torch::kFloat32 && ring.dim() == 3 && ring.is_contiguous() &&
                  ring.size(2) == neurons + (relu ? neurons : 1),
              "ring must be (M, J, N + K) float32, contiguous, K = ", relu ? "N" : "1");
  TORCH_CHECK(total.scalar_type() == torch::kFloat32 && total.is_contiguous() &&
                  total.dim() == 2 && total.size(0) == ring.size(1) &&
                  total.size(1) == ring.size(2),
              "total must be (J, N + K) float32, contiguous");
  TORCH_CHECK(slot >= 0 && slot < ring.size(0), "slot ", slot, " is outside 0..M-1");
  const int64_t classes = ring.size(1);
  const int64_t* yp = y.data_ptr<int64_t>();
  for (int64_t b = 0; b < y.size(0); ++b) {
    TORCH_CHECK(yp[b] >= 0 && yp[b] < classes, "label ", yp[b], " is outside 0..", classes - 1);
  }
  const Tensor xc = x.contiguous();
  Tensor grad = torch::empty_like(xc);  // (B, N)
  const double penalty = push_and_penalize(xc, y, ring, total, slot, relu, resync, weight, grad);
  // loss + weight * penalty written straight into a new scalar: one allocation, no add op.
  Tensor out = torch::empty(loss.sizes(), loss.options());
  out.data_ptr<float>()[0] = static_cast<float>(loss.data_ptr<float>()[0] + penalty);
  if (torch::autograd::compute_requires_grad(loss, x)) {
    auto node = c10::make_intrusive<PenaltyBackward>();
    node->set_next_edges(torch::autograd::collect_next_edges(loss, x));
    node->grad = std::move(grad);
    torch::autograd::set_history(out, node);
  }
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("add_penalty", &add_penalty,
        "loss + weight * NSR penalty of x (B, N) with labels y, pushing the batch into the queue");
}
