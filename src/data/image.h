// Decoded 8-bit RGB images for vision-language calibration: JPEG (libjpeg-
// turbo) and PNG (libpng) read into RGB the way HF image processors see them
// (PIL, then transformers' convert_to_rgb), and Pillow's BICUBIC resize
// reproduced exactly (its fixed-point two-pass filter), so that pixel values
// equal what the Python processor produces.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace lwq {

struct RgbImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> pixels;  // [height, width, 3], row-major
};

// Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS × 2, where it
// raises instead of warning).
inline constexpr uint64_t kPillowMaxImagePixels = 2 * uint64_t{89478485};

// Decodes a JPEG or PNG file (by its signature, not its name). Grayscale and
// palette images become RGB and an alpha channel is dropped, as transformers
// 4.57's convert_to_rgb (PIL convert("RGB")) does. Throws naming the file when
// it does not exist, is neither format, does not decode (truncated, corrupt,
// CMYK), or its header claims more than max_pixels (refused before any pixel
// buffer exists; the fuzz target sets a small limit, since a few hundred
// bytes of JPEG may legally claim 70 M pixels).
RgbImage read_image(const std::filesystem::path& file, uint64_t max_pixels = kPillowMaxImagePixels);

// Pillow's Image.resize(size, Image.BICUBIC) on an RGB image, bit for bit:
// separable cubic (a = −0.5) with support widened by the scale when
// shrinking, 22-bit fixed-point weights, horizontal pass then vertical, each
// rounded and clipped to 8 bits.
RgbImage resize_bicubic(const RgbImage& in, int64_t width, int64_t height);

}  // namespace lwq
