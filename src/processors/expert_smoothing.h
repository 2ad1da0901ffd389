// Per-expert up → down smoothing of a mixture-of-experts layer: the `up-down`
// subgraph msModelSlim's Qwen3-MoE adapter declares for every routed expert
// (spec §8), for iter_smooth and smooth_quant (and flex_smooth_quant with α
// and β given). The experts stream through the layer's smoothing forward one
// at a time, so each expert's down_proj input statistics are gathered while
// it runs and its scales computed from them and its own down weight as it
// finishes (expert_end); the transform (up rows / s, down columns · s) is then
// applied to every later read of the expert (ExpertStream's transform). An
// expert no calibration token reached keeps its weights (as in the reference,
// whose MoE block routes top-k only).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "models/architecture.h"
#include "models/experts.h"
#include "processors/smoothing.h"

namespace lwq {

class ExpertUpDownSmoother {
 public:
  // The experts of `desc` whose up and down Linears the settings select (full
  // names, include/exclude); none when the family declares no expert
  // subgraph, `up-down` is not enabled, or a flex search would be needed.
  ExpertUpDownSmoother(const SmoothSettings& settings, const MoeTemplate& moe, const LayerDesc& desc);
  bool empty() const { return watched_.empty(); }

  // The smoothing forward's hooks: the input of every Linear, and the end of
  // each expert (its weights still in `w`).
  void observe(const std::string& linear, const float* x, int64_t rows, int64_t in);
  void expert_done(int expert, const LayerWeights& w);

  // Applies the computed scales to an expert's weights as it is read.
  ExpertTransform transform() const;
  size_t smoothed() const { return scales_->size(); }

 private:
  SmoothSettings s_;
  std::map<int, std::pair<std::string, std::string>> watched_;  // expert → (up, down) relative names
  std::set<std::string> downs_;                                  // the watched down_proj names
  std::map<std::string, ChannelStats> stats_;                    // by down_proj name
  std::shared_ptr<std::map<int, std::vector<float>>> scales_ = std::make_shared<std::map<int, std::vector<float>>>();
};

// The smoothing forward's executor on a mixture-of-experts layer: every
// Linear input observed for the layer's subgraphs and the experts', each
// expert's scales computed as it finishes.
class ExpertObservingExecutor : public ObservingExecutor {
 public:
  ExpertObservingExecutor(SmoothObserver& obs, const LayerWeights& layer, ExpertUpDownSmoother& experts)
      : ObservingExecutor(obs, &layer), layer_(layer), experts_(experts) {}
  void run(const std::string& linear_name, const float* x, int64_t rows, int64_t in, const float* weight,
           const float* bias, int64_t out, float* y) override {
    experts_.observe(linear_name, x, rows, in);
    ObservingExecutor::run(linear_name, x, rows, in, weight, bias, out, y);
  }
  void expert_end(int expert) override { experts_.expert_done(expert, layer_); }

 private:
  const LayerWeights& layer_;
  ExpertUpDownSmoother& experts_;
};

}  // namespace lwq
