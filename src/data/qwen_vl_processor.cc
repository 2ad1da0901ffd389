#include "data/qwen_vl_processor.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace lwq {

HeightWidth smart_resize(int64_t height, int64_t width, int64_t factor, int64_t min_pixels, int64_t max_pixels) {
  if (height <= 0 || width <= 0) fail("image of {}x{} pixels: nothing to resize", width, height);
  const double h = static_cast<double>(height), w = static_cast<double>(width), f = static_cast<double>(factor);
  if (std::max(h, w) / std::min(h, w) > 200)
    fail("image of {}x{} pixels: absolute aspect ratio must be smaller than 200 (as HF's processor requires)", width,
         height);
  // Python's round() is half-to-even, std::nearbyint's default mode too.
  int64_t hb = static_cast<int64_t>(std::nearbyint(h / f)) * factor;
  int64_t wb = static_cast<int64_t>(std::nearbyint(w / f)) * factor;
  if (hb * wb > max_pixels) {
    const double beta = std::sqrt(h * w / static_cast<double>(max_pixels));
    hb = std::max(factor, static_cast<int64_t>(std::floor(h / beta / f)) * factor);
    wb = std::max(factor, static_cast<int64_t>(std::floor(w / beta / f)) * factor);
  } else if (hb * wb < min_pixels) {
    const double beta = std::sqrt(static_cast<double>(min_pixels) / (h * w));
    hb = static_cast<int64_t>(std::ceil(h * beta / f)) * factor;
    wb = static_cast<int64_t>(std::ceil(w * beta / f)) * factor;
  }
  return {hb, wb};
}

QwenVlPixels qwen_vl_pixels(const RgbImage& image, const QwenVlImageSettings& s) {
  const int64_t P = s.patch_size, M = s.merge_size, Tp = s.temporal_patch_size;
  const HeightWidth size = smart_resize(image.height, image.width, P * M, s.min_pixels, s.max_pixels);
  const RgbImage r = resize_bicubic(image, size.width, size.height);
  // rescale: float64(u8) · (1/255) rounded to float32; normalise in float32, as numpy does there.
  std::vector<float> chw(static_cast<size_t>(3 * r.height * r.width));
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < r.height * r.width; ++i) {
      const float v = static_cast<float>(static_cast<double>(r.pixels[static_cast<size_t>(i * 3 + c)]) * (1.0 / 255.0));
      chw[static_cast<size_t>(c * r.height * r.width + i)] = (v - s.mean[c]) / s.std[c];
    }
  QwenVlPixels out;
  out.grid_t = 1;  // one picture: its frame repeated Tp times fills one temporal patch
  out.grid_h = r.height / P, out.grid_w = r.width / P;
  out.rows = out.grid_h * out.grid_w;
  out.cols = 3 * Tp * P * P;
  out.values.resize(static_cast<size_t>(out.rows * out.cols));
  int64_t row = 0;
  for (int64_t bh = 0; bh < out.grid_h / M; ++bh)
    for (int64_t bw = 0; bw < out.grid_w / M; ++bw)
      for (int64_t mh = 0; mh < M; ++mh)
        for (int64_t mw = 0; mw < M; ++mw, ++row) {
          float* dst = out.values.data() + row * out.cols;
          const int64_t y0 = (bh * M + mh) * P, x0 = (bw * M + mw) * P;
          for (int64_t c = 0; c < 3; ++c)
            for (int64_t t = 0; t < Tp; ++t)
              for (int64_t py = 0; py < P; ++py)
                for (int64_t px = 0; px < P; ++px)
                  *dst++ = chw[static_cast<size_t>((c * r.height + y0 + py) * r.width + x0 + px)];
        }
  return out;
}

}  // namespace lwq
