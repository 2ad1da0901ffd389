#include "config/quant_schemes.h"

#include <gtest/gtest.h>

#include "util/error.h"

namespace lwq {
namespace {

QConfig qc(QDtype d, QScope s, bool sym, std::string method) {
  return {d, s, sym, std::move(method), nlohmann::json::object()};
}

const QConfig kFloatAct = qc(QDtype::Float, QScope::PerTensor, true, "none");
const QConfig kW8 = qc(QDtype::Int8, QScope::PerChannel, true, "minmax");

TEST(QuantSchemes, ExportTypesOfSupportedPairs) {
  LinearQConfig static_asym{qc(QDtype::Int8, QScope::PerTensor, false, "minmax"), kW8};
  LinearQConfig static_sym{qc(QDtype::Int8, QScope::PerTensor, true, "minmax"), kW8};
  LinearQConfig dynamic{qc(QDtype::Int8, QScope::PerToken, true, "minmax"), kW8};
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

TEST(QuantSchemes, ExportTypesBeyondThisMilestone) {
  LinearQConfig w4a8{qc(QDtype::Int8, QScope::PerToken, true, "minmax"),
                     qc(QDtype::Int4, QScope::PerChannel, true, "ssz")};
  EXPECT_EQ(export_type_of(w4a8), "W4A8_DYNAMIC");
  EXPECT_TRUE(is_data_free(w4a8));
  LinearQConfig gptq{kFloatAct, qc(QDtype::Int8, QScope::PerGroup, false, "gptq")};
  EXPECT_EQ(export_type_of(gptq), "W8A16");
  EXPECT_FALSE(is_data_free(gptq));
  LinearQConfig mx{qc(QDtype::MxFp8, QScope::PerBlock, true, "minmax"), qc(QDtype::MxFp4, QScope::PerBlock, true, "minmax")};
  EXPECT_EQ(export_type_of(mx), "W4A8_MXFP");
  try {
    check_supported(w4a8, "cfg.yaml:9: spec.process[0].qconfig");
    FAIL();
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("cfg.yaml:9: spec.process[0].qconfig"), std::string::npos) << m;
    EXPECT_NE(m.find("W4A8_DYNAMIC"), std::string::npos) << m;
    EXPECT_NE(m.find("act int8/per_token/sym/minmax + weight int4/per_channel/sym/ssz"), std::string::npos) << m;
    EXPECT_NE(m.find("W8A8_DYNAMIC: act int8/per_token/sym/minmax + weight int8/per_channel/sym/minmax"),
              std::string::npos) << m;
  }
}

TEST(QuantSchemes, PairsWithoutIR) {
  LinearQConfig asym_token{qc(QDtype::Int8, QScope::PerToken, false, "minmax"), kW8};
  EXPECT_THROW(export_type_of(asym_token), Error);
  LinearQConfig asym_weight_static{qc(QDtype::Int8, QScope::PerTensor, false, "minmax"),
                                   qc(QDtype::Int8, QScope::PerChannel, false, "minmax")};
  EXPECT_THROW(export_type_of(asym_weight_static), Error);
  try {
    check_supported(asym_token, "here");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no export type"), std::string::npos) << e.what();
  }
  // Histogram W8A8 exists in msModelSlim but is not implemented yet.
  LinearQConfig hist{qc(QDtype::Int8, QScope::PerTensor, false, "histogram"), kW8};
  EXPECT_EQ(export_type_of(hist), "W8A8");
  EXPECT_THROW(check_supported(hist, "here"), Error);
}

}  // namespace
}  // namespace lwq
