#include "models/wan.h"

#include <fmt/format.h>

#include "io/json_strict.h"
#include "util/error.h"
#include "util/file_util.h"

namespace lwq {
namespace fs = std::filesystem;
namespace {

using Json = nlohmann::ordered_json;

std::string class_name(const Json& j) {
  auto it = j.find("_class_name");
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

int64_t req_int(const Json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) fail("{}: required key '{}' is missing", where, key);
  if (!it->is_number_integer() || it->get<int64_t>() <= 0)
    fail("{}: key '{}' must be a positive integer, got {}", where, key, it->dump());
  return it->get<int64_t>();
}

int64_t opt_int(const Json& j, const char* key, int64_t def, const std::string& where) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? def : req_int(j, key, where);
}

double opt_num(const Json& j, const char* key, double def, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number() || !(it->get<double>() > 0)) fail("{}: key '{}' must be a positive number, got {}", where, key, it->dump());
  return it->get<double>();
}

bool opt_bool(const Json& j, const char* key, bool def, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_boolean()) fail("{}: key '{}' must be true or false, got {}", where, key, it->dump());
  return it->get<bool>();
}

// Shapes in the original layout; the weight of a Linear is [out, in].
void linear(LayerDesc& d, const std::string& name, int64_t out, int64_t in) {
  d.linears.push_back({name, out, in, true});
  d.tensors.push_back({name + ".weight", {out, in}});
  d.tensors.push_back({name + ".bias", {out}});
}

void attention(LayerDesc& d, const WanConfig& c, const std::string& m, bool image) {
  const int64_t D = c.dim;
  for (const char* p : {"q", "k", "v", "o"}) linear(d, m + "." + p, D, D);
  if (image)
    for (const char* p : {"k_img", "v_img"}) linear(d, m + "." + p, D, D);
  d.tensors.push_back({m + ".norm_q.weight", {D}});
  d.tensors.push_back({m + ".norm_k.weight", {D}});
  if (image) d.tensors.push_back({m + ".norm_k_img.weight", {D}});
}

// Diffusers' names inside an attention module (multimodal.md B.1).
std::string diffusers_attention_part(const std::string& part) {
  static const std::vector<std::pair<std::string, std::string>> map = {
      {"q.", "to_q."},           {"k.", "to_k."},           {"v.", "to_v."},
      {"o.", "to_out.0."},       {"k_img.", "add_k_proj."}, {"v_img.", "add_v_proj."},
      {"norm_k_img.", "norm_added_k."}};
  for (const auto& [from, to] : map)
    if (part.rfind(from, 0) == 0) return to + part.substr(from.size());
  return part;  // norm_q / norm_k keep their names
}

std::string replace_prefix(const std::string& name, const std::string& from, const std::string& to) {
  return name.rfind(from, 0) == 0 ? to + name.substr(from.size()) : "";
}

}  // namespace

bool is_wan_config(const std::string& json_text) {
  try {
    Json j = Json::parse(json_text);
    const std::string cls = class_name(j);
    return cls == "WanModel" || cls == "WanTransformer3DModel";
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}

WanConfig parse_wan_config(const std::string& json_text, const fs::path& where_path) {
  const std::string where = where_path.string();
  Json j = parse_json_strict(json_text, where);
  if (!j.is_object()) fail("{}: expected a JSON object", where);
  WanConfig c;
  c.source = where_path;
  const std::string cls = class_name(j);
  if (cls == "WanModel") {
    c.layout = WanLayout::Original;
    c.dim = req_int(j, "dim", where);
    c.ffn_dim = req_int(j, "ffn_dim", where);
    c.num_heads = req_int(j, "num_heads", where);
    c.num_layers = req_int(j, "num_layers", where);
    c.in_dim = opt_int(j, "in_dim", 16, where);
    c.out_dim = opt_int(j, "out_dim", 16, where);
    c.text_len = opt_int(j, "text_len", 512, where);
    c.freq_dim = opt_int(j, "freq_dim", 256, where);
    c.eps = opt_num(j, "eps", 1e-6, where);
    auto mt = j.find("model_type");
    if (mt != j.end() && !mt->is_null()) {
      if (!mt->is_string()) fail("{}: key 'model_type' must be a string, got {}", where, mt->dump());
      c.model_type = mt->get<std::string>();
    }
    if (c.model_type != "t2v" && c.model_type != "i2v" && c.model_type != "flf2v")
      fail("{}: Wan model_type \"{}\" is not supported (t2v, i2v, flf2v)", where, c.model_type);
  } else if (cls == "WanTransformer3DModel") {
    c.layout = WanLayout::Diffusers;
    c.num_heads = req_int(j, "num_attention_heads", where);
    c.dim = c.num_heads * req_int(j, "attention_head_dim", where);
    c.ffn_dim = req_int(j, "ffn_dim", where);
    c.num_layers = req_int(j, "num_layers", where);
    c.in_dim = opt_int(j, "in_channels", 16, where);
    c.out_dim = opt_int(j, "out_channels", 16, where);
    c.text_dim = opt_int(j, "text_dim", 4096, where);
    c.freq_dim = opt_int(j, "freq_dim", 256, where);
    c.eps = opt_num(j, "eps", 1e-6, where);
    c.cross_attn_norm = opt_bool(j, "cross_attn_norm", true, where);
    auto image = j.find("image_dim");
    if (image != j.end() && !image->is_null()) c.model_type = j.contains("pos_embed_seq_len") &&
                                                                     !j.at("pos_embed_seq_len").is_null()
                                                                 ? "flf2v"
                                                                 : "i2v";
  } else {
    fail("{}: not a Wan2.1 config (_class_name \"{}\"; expected WanModel or WanTransformer3DModel)", where, cls);
  }
  if (c.dim % c.num_heads != 0 || c.head_dim() % 2 != 0)
    fail("{}: dim {} is not an even head size times num_heads {}", where, c.dim, c.num_heads);
  return c;
}

WanConfig load_wan_config(const fs::path& dir) {
  const fs::path file = fs::is_directory(dir) ? dir / "config.json" : dir;
  if (!fs::exists(file)) fail("{}: config.json not found", file.string());
  return parse_wan_config(read_text_file(file), file);
}

LayerDesc wan_block_desc(const WanConfig& c, int n) {
  if (n < 0 || n >= c.num_layers) fail("Wan block {} out of range: {} has num_layers={}", n, c.source.string(), c.num_layers);
  LayerDesc d;
  d.prefix = fmt::format("blocks.{}", n);
  d.tensors.push_back({"modulation", {1, 6, c.dim}});
  attention(d, c, "self_attn", false);
  if (c.cross_attn_norm) {
    d.tensors.push_back({"norm3.weight", {c.dim}});
    d.tensors.push_back({"norm3.bias", {c.dim}});
  }
  attention(d, c, "cross_attn", c.image_cross_attn());
  linear(d, "ffn.0", c.ffn_dim, c.dim);
  linear(d, "ffn.2", c.dim, c.ffn_dim);
  return d;
}

std::vector<TensorDesc> wan_outer_tensors(const WanConfig& c) {
  const int64_t D = c.dim;
  std::vector<TensorDesc> t = {{"patch_embedding.weight", {D, c.in_dim, 1, 2, 2}},
                               {"patch_embedding.bias", {D}},
                               {"text_embedding.0.weight", {D, c.text_dim}},
                               {"text_embedding.0.bias", {D}},
                               {"text_embedding.2.weight", {D, D}},
                               {"text_embedding.2.bias", {D}},
                               {"time_embedding.0.weight", {D, c.freq_dim}},
                               {"time_embedding.0.bias", {D}},
                               {"time_embedding.2.weight", {D, D}},
                               {"time_embedding.2.bias", {D}},
                               {"time_projection.1.weight", {6 * D, D}},
                               {"time_projection.1.bias", {6 * D}},
                               {"head.modulation", {1, 2, D}},
                               {"head.head.weight", {4 * c.out_dim, D}},
                               {"head.head.bias", {4 * c.out_dim}}};
  if (c.image_cross_attn()) {
    const int64_t clip = 1280;
    for (const TensorDesc& e : std::vector<TensorDesc>{{"img_emb.proj.0.weight", {clip}},
                                                       {"img_emb.proj.0.bias", {clip}},
                                                       {"img_emb.proj.1.weight", {clip, clip}},
                                                       {"img_emb.proj.1.bias", {clip}},
                                                       {"img_emb.proj.3.weight", {D, clip}},
                                                       {"img_emb.proj.3.bias", {D}},
                                                       {"img_emb.proj.4.weight", {D}},
                                                       {"img_emb.proj.4.bias", {D}}})
      t.push_back(e);
    if (c.model_type == "flf2v") t.push_back({"img_emb.emb_pos", {1, 514, clip}});
  }
  return t;
}

std::string wan_checkpoint_name(const WanConfig& c, const std::string& name) {
  if (c.layout == WanLayout::Original) return name;
  if (name.rfind("blocks.", 0) == 0) {
    const size_t dot = name.find('.', 7);
    if (dot == std::string::npos) return name;
    const std::string block = name.substr(0, dot + 1), rest = name.substr(dot + 1);
    if (rest == "modulation") return block + "scale_shift_table";
    // The affine cross-attention LayerNorm is norm3 in Wan and norm2 in diffusers (names swapped).
    if (auto r = replace_prefix(rest, "norm3.", "norm2."); !r.empty()) return block + r;
    if (auto r = replace_prefix(rest, "self_attn.", ""); !r.empty()) return block + "attn1." + diffusers_attention_part(r);
    if (auto r = replace_prefix(rest, "cross_attn.", ""); !r.empty()) return block + "attn2." + diffusers_attention_part(r);
    if (auto r = replace_prefix(rest, "ffn.0.", "ffn.net.0.proj."); !r.empty()) return block + r;
    if (auto r = replace_prefix(rest, "ffn.2.", "ffn.net.2."); !r.empty()) return block + r;
    return name;
  }
  static const std::vector<std::pair<std::string, std::string>> outer = {
      {"time_embedding.0.", "condition_embedder.time_embedder.linear_1."},
      {"time_embedding.2.", "condition_embedder.time_embedder.linear_2."},
      {"text_embedding.0.", "condition_embedder.text_embedder.linear_1."},
      {"text_embedding.2.", "condition_embedder.text_embedder.linear_2."},
      {"time_projection.1.", "condition_embedder.time_proj."},
      {"head.head.", "proj_out."},
      {"img_emb.proj.0.", "condition_embedder.image_embedder.norm1."},
      {"img_emb.proj.1.", "condition_embedder.image_embedder.ff.net.0.proj."},
      {"img_emb.proj.3.", "condition_embedder.image_embedder.ff.net.2."},
      {"img_emb.proj.4.", "condition_embedder.image_embedder.norm2."}};
  if (name == "head.modulation") return "scale_shift_table";
  if (name == "img_emb.emb_pos") return "condition_embedder.image_embedder.pos_embed";
  for (const auto& [from, to] : outer)
    if (auto r = replace_prefix(name, from, to); !r.empty()) return r;
  return name;  // patch_embedding.*
}

}  // namespace lwq
