#include "config/quant_schemes.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace lwq {
namespace {

QConfig qc(QDtype d, QScope s, bool sym, std::string method, nlohmann::json ext = nlohmann::json::object()) {
  return {d, s, sym, std::move(method), std::move(ext)};
}

const QConfig kFloatAct = qc(QDtype::Float, QScope::PerTensor, true, "none");
const QConfig kW8 = qc(QDtype::Int8, QScope::PerChannel, true, "minmax");
const QConfig kTok8 = qc(QDtype::Int8, QScope::PerToken, true, "minmax");
const QConfig kTok4 = qc(QDtype::Int4, QScope::PerToken, true, "minmax");

std::string error_of(const LinearQConfig& q) {
  try {
    check_supported(q, "cfg.yaml:9: spec.process[0].qconfig");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(QuantSchemes, ExportTypesOfSupportedPairs) {
  LinearQConfig static_asym{qc(QDtype::Int8, QScope::PerTensor, false, "minmax"), kW8};
  LinearQConfig static_sym{qc(QDtype::Int8, QScope::PerTensor, true, "minmax"), kW8};
  LinearQConfig dynamic{kTok8, kW8};
  LinearQConfig w8a16{kFloatAct, kW8};
  LinearQConfig w8a16_asym{kFloatAct, qc(QDtype::Int8, QScope::PerChannel, false, "minmax")};
  EXPECT_EQ(export_type_of(static_asym), "W8A8");
  EXPECT_EQ(export_type_of(static_sym), "W8A8");
  EXPECT_EQ(export_type_of(dynamic), "W8A8_DYNAMIC");
  EXPECT_EQ(export_type_of(w8a16), "W8A16");
  EXPECT_EQ(export_type_of(w8a16_asym), "W8A16");
  for (const auto* q : {&static_asym, &static_sym, &dynamic, &w8a16, &w8a16_asym})
    EXPECT_EQ(check_supported(*q, "x").export_type, export_type_of(*q));
  EXPECT_FALSE(is_data_free(static_asym));
  EXPECT_FALSE(is_data_free(static_sym));
  EXPECT_TRUE(is_data_free(dynamic));
  EXPECT_TRUE(is_data_free(w8a16));
  // Default-constructed act is the weight-only float act.
  EXPECT_EQ(LinearQConfig{}.act, kFloatAct);
}

// Every row of the IR table that lwquant implements, with its export type.
TEST(QuantSchemes, EveryImplementedExportType) {
  auto grp = [](QDtype d, bool sym) {
    return qc(d, QScope::PerGroup, sym, "gptq", {{"group_size", 64}, {"percdamp", 0.02}, {"block_size", 32}});
  };
  const QConfig mx8 = qc(QDtype::MxFp8, QScope::PerBlock, true, "minmax");
  const QConfig mx4 = qc(QDtype::MxFp4, QScope::PerBlock, true, "minmax");
  const QConfig fp8_tok = qc(QDtype::Fp8E4M3, QScope::PerToken, true, "minmax");
  const QConfig fp8_w = qc(QDtype::Fp8E4M3, QScope::PerChannel, true, "minmax");
  const QConfig dual4 = qc(QDtype::MxFp4, QScope::DualScale, true, "dualscale", {{"dual_block_size", 512}});
  struct Case {
    LinearQConfig q;
    const char* type;
    bool data_free;
  };
  const std::vector<Case> cases = {
      {{qc(QDtype::Int8, QScope::PerTensor, false, "histogram"), kW8}, "W8A8", false},
      {{qc(QDtype::Int8, QScope::PerTensor, false, "minmax"), qc(QDtype::Int8, QScope::PerChannel, true, "ssz")},
       "W8A8",
       false},
      {{kTok8, qc(QDtype::Int8, QScope::PerChannel, true, "gptq")}, "W8A8_DYNAMIC", false},
      {{kTok8, grp(QDtype::Int8, true)}, "W8A8_DYNAMIC", false},
      {{kFloatAct, grp(QDtype::Int8, false)}, "W8A16", false},
      {{kFloatAct, qc(QDtype::Int8, QScope::PerChannel, false, "gptq")}, "W8A16", false},
      {{kTok8, qc(QDtype::Int4, QScope::PerChannel, true, "ssz", {{"step", 10}})}, "W4A8_DYNAMIC", true},
      {{kTok8, qc(QDtype::Int4, QScope::PerChannel, true, "minmax")}, "W4A8_DYNAMIC", true},
      {{kTok4, qc(QDtype::Int4, QScope::PerChannel, true, "minmax")}, "W4A4_DYNAMIC", true},
      {{kTok4, grp(QDtype::Int4, false)}, "W4A4_DYNAMIC", false},
      {{fp8_tok, fp8_w}, "WFP8AFP8_DYNAMIC", true},
      {{mx8, mx8}, "W8A8_MXFP8", true},
      {{mx8, mx4}, "W4A8_MXFP", true},
      {{mx4, mx4}, "W4A4_MXFP4", true},
      {{qc(QDtype::Int8, QScope::PdMix, false, "minmax"), kW8}, "W8A8_MIX", false},
      {{mx8, qc(QDtype::MxFp8, QScope::PerBlock, true, "mse_round")}, "W8A8_MXFP8", true},
      {{mx8, qc(QDtype::MxFp4, QScope::PerBlock, true, "ceil_x", {{"ceil_x_value", 6.5}})}, "W4A8_MXFP", true},
      {{mx4, qc(QDtype::MxFp4, QScope::PerBlock, true, "fouroversix")}, "W4A4_MXFP4", true},
      {{qc(QDtype::Int8, QScope::PdMix, false, "minmax"), qc(QDtype::Int8, QScope::PerChannel, true, "ssz")},
       "W8A8_MIX",
       false},
      {{qc(QDtype::Int8, QScope::PdMix, false, "minmax", {{"aggregation_type", "mean"}}), kW8}, "W8A8_MIX", false},
      {{dual4, dual4}, "W4A4_MXFP4_DUALSCALE", true},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(describe(c.q));
    EXPECT_EQ(check_supported(c.q, "x").export_type, c.type);
    EXPECT_EQ(export_type_of(c.q), c.type);
    EXPECT_EQ(is_data_free(c.q), c.data_free);
  }
  EXPECT_EQ(weight_group_size(grp(QDtype::Int4, true)), 64);
  EXPECT_EQ(weight_group_size(qc(QDtype::Int4, QScope::PerGroup, true, "gptq")), 128);
  EXPECT_EQ(weight_group_size(mx4), 32);
  EXPECT_EQ(weight_group_size(dual4), 32);  // the description's group_size is the inner MX block
  EXPECT_EQ(mx_dual_block_size(dual4), 512);
  EXPECT_TRUE(mindie_format_accepts("W4A4_MXFP4_DUALSCALE", false));
  EXPECT_EQ(weight_group_size(kW8), 0);
  EXPECT_EQ(ssz_steps(qc(QDtype::Int4, QScope::PerChannel, true, "ssz")), 50);
  EXPECT_DOUBLE_EQ(gptq_percdamp(grp(QDtype::Int8, true)), 0.02);
  EXPECT_EQ(gptq_block_size(grp(QDtype::Int8, true)), 32);
  EXPECT_EQ(gptq_block_size(kW8), 128);
  EXPECT_DOUBLE_EQ(mx_ceil_x_value(qc(QDtype::MxFp4, QScope::PerBlock, true, "ceil_x")), 7.25);
}

TEST(QuantSchemes, RejectionsListTheValidCombinations) {
  // Per-group minmax weights are not registered (only gptq makes per-group int weights).
  std::string m = error_of({kFloatAct, qc(QDtype::Int8, QScope::PerGroup, true, "minmax")});
  EXPECT_NE(m.find("cfg.yaml:9: spec.process[0].qconfig"), std::string::npos) << m;
  EXPECT_NE(m.find("weight quantizer int8/per_group/sym/minmax is not registered"), std::string::npos) << m;
  EXPECT_NE(m.find("W8A16: act float/per_tensor/sym/none + weight int8/per_group/sym|asym/gptq"), std::string::npos)
      << m;
  EXPECT_NE(m.find("W4A8_DYNAMIC: act int8/per_token/sym/minmax + weight int4/per_channel/sym/minmax|ssz|gptq"),
            std::string::npos) << m;
  // ssz is symmetric only.
  m = error_of({kTok8, qc(QDtype::Int4, QScope::PerChannel, false, "ssz")});
  EXPECT_NE(m.find("not registered"), std::string::npos) << m;
  // Asymmetric int4 weights under int8 activations: registered (gptq) but no IR.
  m = error_of({kTok8, qc(QDtype::Int4, QScope::PerChannel, false, "gptq")});
  EXPECT_NE(m.find("no export type"), std::string::npos) << m;
  // pd_mix is registered asymmetric only.
  m = error_of({qc(QDtype::Int8, QScope::PdMix, true, "minmax"), kW8});
  EXPECT_NE(m.find("activation quantizer int8/pd_mix/sym/minmax is not registered"), std::string::npos) << m;
  // pd_mix's and per-tensor minmax's observers aggregate with max or mean (msModelSlim's Literal), nothing else.
  for (const char* agg : {"max", "mean"}) {
    EXPECT_EQ(error_of({qc(QDtype::Int8, QScope::PdMix, false, "minmax", {{"aggregation_type", agg}}), kW8}), "");
    EXPECT_EQ(error_of({qc(QDtype::Int8, QScope::PerTensor, false, "minmax", {{"aggregation_type", agg}}), kW8}), "");
  }
  EXPECT_TRUE(mean_aggregation(qc(QDtype::Int8, QScope::PdMix, false, "minmax", {{"aggregation_type", "mean"}})));
  EXPECT_FALSE(mean_aggregation(qc(QDtype::Int8, QScope::PdMix, false, "minmax")));
  m = error_of({qc(QDtype::Int8, QScope::PdMix, false, "minmax", {{"aggregation_type", "median"}}), kW8});
  EXPECT_NE(m.find("act ext.aggregation_type must be \"max\" or \"mean\", got \"median\""), std::string::npos) << m;
  // Quirk 5: asymmetric per-group W8A8_DYNAMIC would export zero offsets.
  m = error_of({kTok8, qc(QDtype::Int8, QScope::PerGroup, false, "gptq")});
  EXPECT_NE(m.find("W8A8_DYNAMIC"), std::string::npos) << m;
  // Unregistered activation.
  m = error_of({qc(QDtype::Int4, QScope::PerTensor, true, "minmax"), kW8});
  EXPECT_NE(m.find("activation quantizer int4/per_tensor/sym/minmax is not registered"), std::string::npos) << m;
  // dual_scale: dual_block_size required, a positive multiple of 32, equal for act and weight.
  auto dual = [](nlohmann::json ext) { return qc(QDtype::MxFp4, QScope::DualScale, true, "dualscale", std::move(ext)); };
  const nlohmann::json d512 = {{"dual_block_size", 512}};
  EXPECT_EQ(error_of({dual(d512), dual(d512)}), "");
  m = error_of({dual(nlohmann::json::object()), dual(d512)});
  EXPECT_NE(m.find("act ext.dual_block_size is required for dual_scale"), std::string::npos) << m;
  m = error_of({dual(d512), dual({{"dual_block_size", 48}})});
  EXPECT_NE(m.find("weight ext.dual_block_size must be a positive multiple of 32"), std::string::npos) << m;
  m = error_of({dual(d512), dual({{"dual_block_size", 256}})});
  EXPECT_NE(m.find("act ext.dual_block_size 512 differs from weight ext.dual_block_size 256"), std::string::npos) << m;
  m = error_of({dual({{"dual_block_size", 512}, {"axes", 0}}), dual(d512)});
  EXPECT_NE(m.find("ext.axes 0 is not supported"), std::string::npos) << m;
  // dualscale pairs only with itself: no IR for mixed pairs.
  m = error_of({qc(QDtype::MxFp4, QScope::PerBlock, true, "minmax"), dual(d512)});
  EXPECT_NE(m.find("no export type"), std::string::npos) << m;
  // mse_round is registered for mxfp8 weights only, ceil_x and fouroversix for mxfp4 ones.
  m = error_of({qc(QDtype::MxFp8, QScope::PerBlock, true, "minmax"), qc(QDtype::MxFp4, QScope::PerBlock, true, "mse_round")});
  EXPECT_NE(m.find("weight quantizer mxfp4/per_block/sym/mse_round is not registered"), std::string::npos) << m;
  m = error_of({qc(QDtype::MxFp8, QScope::PerBlock, true, "minmax"), qc(QDtype::MxFp8, QScope::PerBlock, true, "ceil_x")});
  EXPECT_NE(m.find("weight quantizer mxfp8/per_block/sym/ceil_x is not registered"), std::string::npos) << m;
  // ceil_x ext: range, unknown keys, the search lwquant does not run.
  const QConfig mx4a = qc(QDtype::MxFp4, QScope::PerBlock, true, "minmax");
  m = error_of({mx4a, qc(QDtype::MxFp4, QScope::PerBlock, true, "ceil_x", {{"ceil_x_value", 5.0}})});
  EXPECT_NE(m.find("ext.ceil_x_value must be in [6.0, 12.0], got 5"), std::string::npos) << m;
  m = error_of({mx4a, qc(QDtype::MxFp4, QScope::PerBlock, true, "ceil_x", {{"step", 5}})});
  EXPECT_NE(m.find("ext.step is not a ceil_x key"), std::string::npos) << m;
  m = error_of({mx4a, qc(QDtype::MxFp4, QScope::PerBlock, true, "ceil_x", {{"enable_search", true}, {"search_min", 9.0}, {"search_max", 8.0}})});
  EXPECT_NE(m.find("ext.search_max (8) must be greater than ext.search_min (9)"), std::string::npos) << m;
  m = error_of({mx4a, qc(QDtype::MxFp4, QScope::PerBlock, true, "ceil_x", {{"search_step", 0}})});
  EXPECT_NE(m.find("ext.search_step must be positive"), std::string::npos) << m;
  EXPECT_TRUE(error_of({mx4a, qc(QDtype::MxFp4, QScope::PerBlock, true, "ceil_x", {{"enable_search", true}})}).empty());
}

TEST(QuantSchemes, ExtValuesChecked) {
  EXPECT_NE(error_of({kTok8, qc(QDtype::Int8, QScope::PerChannel, true, "ssz", {{"step", 0}})}).find("ext.step"),
            std::string::npos);
  EXPECT_NE(error_of({kTok8, qc(QDtype::Int8, QScope::PerChannel, true, "ssz", {{"step", "x"}})}).find("ext.step"),
            std::string::npos);
  EXPECT_NE(error_of({kFloatAct, qc(QDtype::Int8, QScope::PerGroup, true, "gptq", {{"group_size", -4}})})
                .find("ext.group_size"),
            std::string::npos);
  EXPECT_NE(error_of({kFloatAct, qc(QDtype::Int8, QScope::PerChannel, true, "gptq", {{"percdamp", -1}})})
                .find("ext.percdamp"),
            std::string::npos);
  EXPECT_NE(error_of({kFloatAct, qc(QDtype::Int8, QScope::PerChannel, true, "gptq", {{"block_size", 0}})})
                .find("ext.block_size"),
            std::string::npos);
  const QConfig mx = qc(QDtype::MxFp8, QScope::PerBlock, true, "minmax", {{"axes", 0}});
  EXPECT_NE(error_of({mx, mx}).find("ext.axes"), std::string::npos);
}

TEST(QuantSchemes, PairsWithoutIR) {
  LinearQConfig asym_token{qc(QDtype::Int8, QScope::PerToken, false, "minmax"), kW8};
  EXPECT_THROW(export_type_of(asym_token), Error);
  LinearQConfig asym_weight_static{qc(QDtype::Int8, QScope::PerTensor, false, "minmax"),
                                   qc(QDtype::Int8, QScope::PerChannel, false, "minmax")};
  EXPECT_THROW(export_type_of(asym_weight_static), Error);
  EXPECT_NE(error_of(asym_token).find("no export type"), std::string::npos);
}

TEST(QuantSchemes, PortabilityWarnings) {
  EXPECT_TRUE(portability_warning({kFloatAct, qc(QDtype::Int8, QScope::PerChannel, false, "minmax")}));
  EXPECT_TRUE(portability_warning({kTok4, qc(QDtype::Int4, QScope::PerGroup, false, "gptq")}));
  EXPECT_FALSE(portability_warning({kTok8, kW8}));
}

}  // namespace
}  // namespace lwq
