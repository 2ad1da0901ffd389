#include "processors/expert_smoothing.h"

#include <algorithm>
#include <cmath>

#include "config/module_matcher.h"
#include "util/error.h"

namespace lwq {
ExpertUpDownSmoother::ExpertUpDownSmoother(const SmoothSettings& settings, const MoeTemplate& moe,
                                           const LayerDesc& desc)
    : s_(settings) {
  const bool enabled =
      std::find(s_.enabled_types.begin(), s_.enabled_types.end(), "up-down") != s_.enabled_types.end();
  const bool searched = s_.kind == SmoothKind::FlexSmoothQuant && !(s_.alpha && s_.beta);
  if (!moe.smooth_expert_up_down || !enabled || searched) return;
  for (int e = 0; e < desc.num_experts; ++e) {
    const std::string up = expert_linear_name(moe, e, moe.up), down = expert_linear_name(moe, e, moe.down);
    if (is_selected(s_.include, s_.exclude, desc.prefix + "." + up) &&
        is_selected(s_.include, s_.exclude, desc.prefix + "." + down)) {
      watched_[e] = {up, down};
      downs_.insert(down);
    }
  }
}

void ExpertUpDownSmoother::observe(const std::string& linear, const float* x, int64_t rows, int64_t in) {
  if (rows <= 0) return;
  if (!downs_.count(linear)) return;
  ChannelStats& st = stats_[linear];
  if (st.max.empty()) {
    st.max.assign(static_cast<size_t>(in), -INFINITY);
    st.min.assign(static_cast<size_t>(in), INFINITY);
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < in; ++c) {
      const float v = x[r * in + c];
      st.max[static_cast<size_t>(c)] = std::max(st.max[static_cast<size_t>(c)], v);
      st.min[static_cast<size_t>(c)] = std::min(st.min[static_cast<size_t>(c)], v);
    }
  st.rows += rows;
}

void ExpertUpDownSmoother::expert_done(int expert, const LayerWeights& w) {
  auto it = watched_.find(expert);
  if (it == watched_.end()) return;
  auto st = stats_.find(it->second.second);
  if (st == stats_.end()) return;  // no token reached this expert: left as it is
  const auto in = static_cast<int64_t>(st->second.max.size());
  const std::string down = it->second.second + ".weight";
  const std::vector<float> a = activation_scale(st->second, /*symmetric=*/true);
  const std::vector<float> wcol = weight_scale(w, down, in);
  const double alpha = *s_.alpha, beta = s_.kind == SmoothKind::FlexSmoothQuant ? *s_.beta : 1.0 - alpha;
  const double smin = s_.kind == SmoothKind::IterSmooth ? s_.scale_min : 1e-5;
  (*scales_)[expert] = smooth_scale(a, wcol, alpha, beta, smin);
  stats_.erase(st);
}

ExpertTransform ExpertUpDownSmoother::transform() const {
  if (scales_->empty()) return {};
  std::map<int, std::pair<std::string, std::string>> names = watched_;
  return [scales = scales_, names](int e, LayerWeights& w) {
    auto it = scales->find(e);
    if (it == scales->end()) return;
    const std::vector<float>& s = it->second;
    std::vector<float>& up = w.mutable_f32(names.at(e).first + ".weight");
    std::vector<float>& down = w.mutable_f32(names.at(e).second + ".weight");
    if (up.size() % s.size() != 0 || down.size() % s.size() != 0)
      fail("expert {}: up/down do not have {} intermediate channels", e, s.size());
    const size_t cols = up.size() / s.size();
    for (size_t r = 0; r < s.size(); ++r)
      for (size_t c = 0; c < cols; ++c) up[r * cols + c] /= s[r];
    for (size_t i = 0; i < down.size(); ++i) down[i] *= s[i % s.size()];
  };
}

}  // namespace lwq
