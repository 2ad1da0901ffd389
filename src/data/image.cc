#include "data/image.h"

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include <csetjmp>
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "util/error.h"

namespace lwq {
namespace fs = std::filesystem;
namespace {

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

File open_file(const fs::path& file) {
  File f(std::fopen(file.c_str(), "rb"));
  if (!f) fail("image {}: cannot be opened (missing or unreadable)", file.string());
  return f;
}

// A header claiming more than the limit is refused before any pixel buffer
// is allocated.
[[noreturn]] void fail_too_large(const fs::path& file, uint64_t width, uint64_t height, uint64_t limit) {
  fail("image {}: {}x{} pixels exceed the limit of {}{}", file.string(), width, height, limit,
       limit == kPillowMaxImagePixels ? " (Pillow's decompression-bomb limit)" : "");
}

// ---- JPEG ----

struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings pass (PIL tolerates e.g. extraneous bytes), except a premature end
// of data, which libjpeg fills with grey and PIL refuses ("image file is
// truncated"): calibrating on half an image would go unnoticed.
void jpeg_emit_message(j_common_ptr cinfo, int level) {
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_error_exit(cinfo);
}

RgbImage read_jpeg(const fs::path& file, uint64_t max_pixels) {
  File f = open_file(file);
  jpeg_decompress_struct cinfo{};
  JpegError err{};
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_error_exit;
  err.mgr.emit_message = jpeg_emit_message;
  RgbImage img;
  std::vector<uint8_t>* pixels = &img.pixels;  // survives the longjmp
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    fail("image {}: JPEG does not decode: {}", file.string(), err.message);
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, f.get());
  jpeg_read_header(&cinfo, TRUE);
  if (uint64_t{cinfo.image_width} * cinfo.image_height > max_pixels) {
    const uint64_t w = cinfo.image_width, h = cinfo.image_height;
    jpeg_destroy_decompress(&cinfo);
    fail_too_large(file, w, h, max_pixels);
  }
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&cinfo);
    fail("image {}: CMYK JPEG is not supported", file.string());
  }
  cinfo.out_color_space = JCS_RGB;  // grayscale is replicated to RGB, as PIL's convert("RGB")
  jpeg_start_decompress(&cinfo);
  img.width = cinfo.output_width, img.height = cinfo.output_height;
  pixels->resize(static_cast<size_t>(img.width * img.height * 3));
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = pixels->data() + static_cast<size_t>(cinfo.output_scanline) * img.width * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return img;
}

// ---- PNG ----

struct PngState {
  std::jmp_buf jump;
  std::string message;
};

void png_error_fn(png_structp png, png_const_charp msg) {
  auto* s = static_cast<PngState*>(png_get_error_ptr(png));
  s->message = msg;
  std::longjmp(s->jump, 1);
}

RgbImage read_png(const fs::path& file, uint64_t max_pixels) {
  File f = open_file(file);
  PngState state;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &state, png_error_fn, [](png_structp, png_const_charp) {});
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    fail("image {}: out of memory for the PNG decoder", file.string());
  }
  RgbImage img;
  std::vector<uint8_t> rgba;
  std::vector<png_bytep> rows;
  if (setjmp(state.jump)) {
    png_destroy_read_struct(&png, &info, nullptr);
    fail("image {}: PNG does not decode: {}", file.string(), state.message);
  }
  png_init_io(png, f.get());
  png_read_info(png, info);
  if (uint64_t{png_get_image_width(png, info)} * png_get_image_height(png, info) > max_pixels) {
    const uint64_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    png_destroy_read_struct(&png, &info, nullptr);
    fail_too_large(file, w, h, max_pixels);
  }
  // To 8-bit RGB or RGBA without gamma handling (PIL ignores gAMA too).
  png_set_strip_16(png);
  png_set_packing(png);
  png_set_palette_to_rgb(png);
  png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const int64_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  const int channels = png_get_channels(png, info);
  rgba.resize(static_cast<size_t>(w * h * channels));
  rows.resize(static_cast<size_t>(h));
  for (int64_t y = 0; y < h; ++y) rows[static_cast<size_t>(y)] = rgba.data() + y * w * channels;
  png_read_image(png, rows.data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  if (channels != 3 && channels != 4) fail("image {}: PNG decodes to {} channels, not RGB(A)", file.string(), channels);
  img.width = w, img.height = h;
  img.pixels.resize(static_cast<size_t>(w * h * 3));
  for (int64_t i = 0; i < w * h; ++i)
    for (int c = 0; c < 3; ++c) {
      img.pixels[static_cast<size_t>(i * 3 + c)] = rgba[static_cast<size_t>(i * channels + c)];  // alpha dropped
    }
  return img;
}

// ---- Pillow's resampling (Resample.c) ----

constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

// For each output index: the first input index, the count, and fixed-point
// weights (precompute_coeffs + normalize_coeffs_8bpc).
struct Coeffs {
  int64_t ksize = 0;
  std::vector<int64_t> first, count;
  std::vector<int32_t> k;  // [out, ksize]
};

Coeffs precompute(int64_t in_size, int64_t out_size) {
  const double scale = static_cast<double>(in_size) / static_cast<double>(out_size);
  const double filterscale = std::max(scale, 1.0);
  const double support = 2.0 * filterscale;
  Coeffs c;
  c.ksize = static_cast<int64_t>(std::ceil(support)) * 2 + 1;
  c.first.resize(static_cast<size_t>(out_size));
  c.count.resize(static_cast<size_t>(out_size));
  c.k.assign(static_cast<size_t>(out_size * c.ksize), 0);
  std::vector<double> w(static_cast<size_t>(c.ksize));
  for (int64_t xx = 0; xx < out_size; ++xx) {
    const double center = (static_cast<double>(xx) + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int64_t xmin = static_cast<int64_t>(center - support + 0.5);  // truncation, as Pillow's (int) cast
    if (xmin < 0) xmin = 0;
    int64_t xmax = static_cast<int64_t>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double sum = 0.0;
    for (int64_t x = 0; x < xmax; ++x) sum += (w[static_cast<size_t>(x)] = bicubic((x + xmin - center + 0.5) * ss));
    for (int64_t x = 0; x < xmax; ++x) {
      const double v = sum != 0.0 ? w[static_cast<size_t>(x)] / sum : w[static_cast<size_t>(x)];
      c.k[static_cast<size_t>(xx * c.ksize + x)] =
          static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    c.first[static_cast<size_t>(xx)] = xmin;
    c.count[static_cast<size_t>(xx)] = xmax;
  }
  return c;
}

uint8_t clip8(int64_t v) {
  if (v >= (int64_t{1} << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

// One pass along rows (horizontal) or columns (vertical) of an RGB image.
RgbImage resample_pass(const RgbImage& in, const Coeffs& c, bool horizontal, int64_t out_size) {
  RgbImage out;
  out.width = horizontal ? out_size : in.width;
  out.height = horizontal ? in.height : out_size;
  out.pixels.resize(static_cast<size_t>(out.width * out.height * 3));
  for (int64_t y = 0; y < out.height; ++y)
    for (int64_t x = 0; x < out.width; ++x) {
      const int64_t o = horizontal ? x : y;
      const int32_t* k = c.k.data() + o * c.ksize;
      int64_t acc[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1)};
      for (int64_t i = 0; i < c.count[static_cast<size_t>(o)]; ++i) {
        const int64_t src = c.first[static_cast<size_t>(o)] + i;
        const uint8_t* p = in.pixels.data() + ((horizontal ? y : src) * in.width + (horizontal ? src : x)) * 3;
        for (int ch = 0; ch < 3; ++ch) acc[ch] += static_cast<int64_t>(p[ch]) * k[i];
      }
      for (int ch = 0; ch < 3; ++ch) out.pixels[static_cast<size_t>((y * out.width + x) * 3 + ch)] = clip8(acc[ch]);
    }
  return out;
}

}  // namespace

RgbImage read_image(const fs::path& file, uint64_t max_pixels) {
  unsigned char sig[8] = {};
  {
    File f = open_file(file);
    if (std::fread(sig, 1, sizeof sig, f.get()) < 3) fail("image {}: too short to be a JPEG or PNG", file.string());
  }
  if (sig[0] == 0xFF && sig[1] == 0xD8 && sig[2] == 0xFF) return read_jpeg(file, max_pixels);
  if (png_sig_cmp(sig, 0, 8) == 0) return read_png(file, max_pixels);
  fail("image {}: neither a JPEG nor a PNG file (by its first bytes)", file.string());
}

RgbImage resize_bicubic(const RgbImage& in, int64_t width, int64_t height) {
  if (width <= 0 || height <= 0 || in.width <= 0 || in.height <= 0)
    fail("resize: {}x{} to {}x{}: sizes must be positive", in.width, in.height, width, height);
  // Pillow skips a pass whose size does not change; the vertical pass reads
  // only the rows the horizontal one produced (all of them here: box = image).
  RgbImage cur = in;
  if (width != in.width) cur = resample_pass(cur, precompute(in.width, width), true, width);
  if (height != in.height) cur = resample_pass(cur, precompute(in.height, height), false, height);
  return cur;
}

}  // namespace lwq
