// The image side of Qwen2-VL / Qwen3-VL processing (transformers'
// Qwen2VLImageProcessor, the slow PIL path; multimodal.md A.3.2): resize to
// multiples of patch·merge within [min_pixels, max_pixels], rescale by 1/255,
// normalise, repeat the frame to fill a temporal patch, and lay the patches
// out as the vision tower reads them.
#pragma once

#include <cstdint>
#include <vector>

#include "data/image.h"

namespace lwq {

struct QwenVlImageSettings {
  // Qwen3-VL's preprocessor_config.json values (multimodal.md A.3.2).
  int64_t patch_size = 16, temporal_patch_size = 2, merge_size = 2;
  int64_t min_pixels = 65536, max_pixels = 16777216;  // size.shortest_edge / size.longest_edge
  float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.5f, 0.5f, 0.5f};
};

// HF smart_resize: (height, width) rounded (half to even) to multiples of
// `factor`, scaled down into max_pixels or up to min_pixels keeping the
// aspect. Throws when the aspect ratio exceeds 200.
struct HeightWidth {
  int64_t height = 0, width = 0;
};
HeightWidth smart_resize(int64_t height, int64_t width, int64_t factor, int64_t min_pixels, int64_t max_pixels);

struct QwenVlPixels {
  std::vector<float> values;  // [t·h·w, 3·temporal·P·P], rows [t, h/M, w/M, M, M], each (C, Tp, P, P)
  int64_t rows = 0, cols = 0;
  int64_t grid_t = 0, grid_h = 0, grid_w = 0;  // image_grid_thw
};

// One picture → pixel_values and its grid, as the processor makes them.
QwenVlPixels qwen_vl_pixels(const RgbImage& image, const QwenVlImageSettings& s = {});

}  // namespace lwq
