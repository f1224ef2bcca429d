// Image files -> BGR uint8, decoded like lapmask.preprocess.load_image_bgr (PIL): palette and gray expanded to
// RGB, alpha dropped (not composited), 16-bit channels truncated to their high byte, EXIF orientation applied
// (JPEG APP1 and PNG eXIf). Formats are detected from the file's first bytes, not its name.
#include "lapmask/image_io.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include "lapmask/types.h"

#ifdef LAPMASK_WITH_PNG
#include <png.h>
#endif
#ifdef LAPMASK_WITH_JPEG
#include <csetjmp>
#include <jpeglib.h>
#endif

namespace lapmask {
namespace {

struct FileCloser {
  void operator()(FILE* f) const {
    if (f != nullptr) std::fclose(f);
  }
};
using FilePtr = std::unique_ptr<FILE, FileCloser>;

FilePtr open_file(const std::string& path, const char* mode) {
  FilePtr f(std::fopen(path.c_str(), mode));
  if (!f) throw Error(std::string("cannot open ") + path + (mode[0] == 'r' ? " for reading" : " for writing"));
  return f;
}

// EXIF orientation (1..8) from a TIFF-structured EXIF block (optionally prefixed by "Exif\0\0"); 1 if absent.
int exif_orientation(const uint8_t* p, size_t n) {
  if (n >= 6 && std::memcmp(p, "Exif\0\0", 6) == 0) {
    p += 6;
    n -= 6;
  }
  if (n < 8) return 1;
  const bool le = p[0] == 'I' && p[1] == 'I';
  if (!le && !(p[0] == 'M' && p[1] == 'M')) return 1;
  auto u16 = [&](size_t o) -> uint32_t { return le ? p[o] | (p[o + 1] << 8) : (p[o] << 8) | p[o + 1]; };
  auto u32 = [&](size_t o) -> uint32_t { return le ? u16(o) | (u16(o + 2) << 16) : (u16(o) << 16) | u16(o + 2); };
  const size_t ifd = u32(4);
  if (ifd + 2 > n) return 1;
  const uint32_t entries = u16(ifd);
  for (uint32_t i = 0; i < entries; ++i) {
    const size_t e = ifd + 2 + 12 * static_cast<size_t>(i);
    if (e + 12 > n) break;
    if (u16(e) == 0x0112) {
      const uint32_t v = u16(e + 8);
      return v >= 1 && v <= 8 ? static_cast<int>(v) : 1;
    }
  }
  return 1;
}

// PIL ImageOps.exif_transpose for orientations 2..8.
ImageBGR apply_orientation(const ImageBGR& in, int orientation) {
  if (orientation <= 1) return in;
  const int H = in.height, W = in.width;
  const bool swap = orientation >= 5;
  ImageBGR out;
  out.height = swap ? W : H;
  out.width = swap ? H : W;
  out.data.resize(in.data.size());
  for (int y = 0; y < out.height; ++y) {
    for (int x = 0; x < out.width; ++x) {
      int sy = y, sx = x;
      switch (orientation) {
        case 2: sx = W - 1 - x; break;                         // mirror left-right
        case 3: sy = H - 1 - y; sx = W - 1 - x; break;         // rotate 180
        case 4: sy = H - 1 - y; break;                         // mirror top-bottom
        case 5: sy = x; sx = y; break;                         // transpose
        case 6: sy = H - 1 - x; sx = y; break;                 // rotate 90 clockwise
        case 7: sy = H - 1 - x; sx = W - 1 - y; break;         // transverse
        case 8: sy = x; sx = W - 1 - y; break;                 // rotate 90 counter-clockwise
        default: break;
      }
      std::memcpy(&out.data[(static_cast<size_t>(y) * out.width + x) * 3],
                  &in.data[(static_cast<size_t>(sy) * W + sx) * 3], 3);
    }
  }
  return out;
}

// Binary PPM (P6) / PGM (P5), maxval <= 255.
ImageBGR read_pnm(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::string magic;
  f >> magic;
  auto next_int = [&]() {
    int v = -1;
    for (;;) {
      f >> std::ws;
      if (f.peek() == '#') {
        std::string line;
        std::getline(f, line);
        continue;
      }
      f >> v;
      return v;
    }
  };
  const int w = next_int(), h = next_int(), maxval = next_int();
  if (!f || (magic != "P6" && magic != "P5") || w <= 0 || h <= 0 || maxval <= 0 || maxval > 255) {
    throw Error(path + ": unsupported PNM file (binary P6/P5 with maxval <= 255 only)");
  }
  f.get();  // the single whitespace after maxval
  const int c = magic == "P6" ? 3 : 1;
  std::vector<uint8_t> raw(static_cast<size_t>(w) * h * c);
  f.read(reinterpret_cast<char*>(raw.data()), static_cast<std::streamsize>(raw.size()));
  if (static_cast<size_t>(f.gcount()) != raw.size()) throw Error(path + ": truncated PNM file");
  ImageBGR img{h, w, std::vector<uint8_t>(static_cast<size_t>(w) * h * 3)};
  for (size_t i = 0; i < static_cast<size_t>(w) * h; ++i) {
    for (int k = 0; k < 3; ++k) img.data[3 * i + k] = c == 3 ? raw[3 * i + 2 - k] : raw[i];
  }
  return img;
}

#ifdef LAPMASK_WITH_PNG
ImageBGR read_png(const std::string& path) {
  FilePtr f = open_file(path, "rb");
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    throw Error("libpng: out of memory");
  }
  ImageBGR img;
  std::vector<png_bytep> rows;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error(path + ": corrupt PNG file");
  }
  png_init_io(png, f.get());
  png_read_info(png, info);
  const int color = png_get_color_type(png, info);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) {
    png_set_expand_gray_1_2_4_to_8(png);
    png_set_gray_to_rgb(png);
  }
  png_set_strip_16(png);     // high byte, as PIL's RGB;16B raw mode
  png_set_strip_alpha(png);  // PIL's convert("RGB") drops alpha without compositing
  png_set_bgr(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  img.width = static_cast<int>(png_get_image_width(png, info));
  img.height = static_cast<int>(png_get_image_height(png, info));
  if (png_get_rowbytes(png, info) != static_cast<size_t>(img.width) * 3) {
    png_destroy_read_struct(&png, &info, nullptr);
    throw Error(path + ": unexpected PNG layout after conversion to 8-bit BGR");
  }
  img.data.resize(static_cast<size_t>(img.width) * img.height * 3);
  rows.resize(img.height);
  for (int y = 0; y < img.height; ++y) rows[y] = img.data.data() + static_cast<size_t>(y) * img.width * 3;
  png_read_image(png, rows.data());
  png_read_end(png, info);
  int orientation = 1;
#ifdef PNG_eXIf_SUPPORTED
  png_uint_32 exif_len = 0;
  png_bytep exif = nullptr;
  if (png_get_eXIf_1(png, info, &exif_len, &exif) != 0 && exif != nullptr) {
    orientation = exif_orientation(exif, exif_len);
  }
#endif
  png_destroy_read_struct(&png, &info, nullptr);
  return apply_orientation(img, orientation);
}

void write_png(const std::string& path, const uint8_t* bgr, int height, int width) {
  FilePtr f = open_file(path, "wb");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    throw Error("libpng: out of memory");
  }
  std::vector<png_bytep> rows(height);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw Error("cannot write PNG " + path);
  }
  png_init_io(png, f.get());
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  png_set_bgr(png);
  for (int y = 0; y < height; ++y) rows[y] = const_cast<png_bytep>(bgr + static_cast<size_t>(y) * width * 3);
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
}
#endif

#ifdef LAPMASK_WITH_JPEG
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}

ImageBGR read_jpeg(const std::string& path) {
  FilePtr f = open_file(path, "rb");
  jpeg_decompress_struct cinfo{};
  JpegError err{};
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_fail;
  ImageBGR img;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    throw Error(path + ": cannot decode JPEG (" + err.message + ")");
  }
  jpeg_create_decompress(&cinfo);
  jpeg_stdio_src(&cinfo, f.get());
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&cinfo);
    throw Error(path + ": CMYK JPEG files are not supported; convert the image to RGB");
  }
  cinfo.out_color_space = JCS_RGB;  // libjpeg's defaults otherwise (ISLOW DCT, fancy upsampling), as PIL
  jpeg_start_decompress(&cinfo);
  img.width = static_cast<int>(cinfo.output_width);
  img.height = static_cast<int>(cinfo.output_height);
  img.data.resize(static_cast<size_t>(img.width) * img.height * 3);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = img.data.data() + static_cast<size_t>(cinfo.output_scanline) * img.width * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  int orientation = 1;
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m != nullptr; m = m->next) {
    if (m->marker == JPEG_APP0 + 1 && m->data_length >= 6 && std::memcmp(m->data, "Exif\0\0", 6) == 0) {
      orientation = exif_orientation(m->data, m->data_length);
    }
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  for (size_t i = 0; i < img.data.size(); i += 3) std::swap(img.data[i], img.data[i + 2]);  // RGB -> BGR
  return apply_orientation(img, orientation);
}
#endif

}  // namespace

std::vector<std::string> image_formats() {
  std::vector<std::string> f;
#ifdef LAPMASK_WITH_PNG
  f.emplace_back("png");
#endif
#ifdef LAPMASK_WITH_JPEG
  f.emplace_back("jpeg");
#endif
  f.emplace_back("ppm");
  return f;
}

ImageBGR read_image_bgr(const std::string& path) {
  uint8_t magic[8] = {0};
  {
    FilePtr f = open_file(path, "rb");
    if (std::fread(magic, 1, sizeof magic, f.get()) < 2) throw Error(path + ": empty or truncated image file");
  }
  if (std::memcmp(magic, "\x89PNG", 4) == 0) {
#ifdef LAPMASK_WITH_PNG
    return read_png(path);
#else
    throw Error(path + " is a PNG but this build has no libpng; install libpng-dev and reconfigure");
#endif
  }
  if (magic[0] == 0xFF && magic[1] == 0xD8) {
#ifdef LAPMASK_WITH_JPEG
    return read_jpeg(path);
#else
    throw Error(path + " is a JPEG but this build has no libjpeg; install libjpeg-dev and reconfigure");
#endif
  }
  if (magic[0] == 'P' && (magic[1] == '6' || magic[1] == '5')) return read_pnm(path);
  throw Error(path + ": unknown image format (PNG, JPEG or binary PPM expected)");
}

void write_image_bgr(const std::string& path, const uint8_t* bgr, int height, int width) {
  if (path.size() > 4 && path.compare(path.size() - 4, 4, ".ppm") == 0) {
    FilePtr f = open_file(path, "wb");
    std::fprintf(f.get(), "P6\n%d %d\n255\n", width, height);
    std::vector<uint8_t> rgb(static_cast<size_t>(width) * 3);
    for (int y = 0; y < height; ++y) {
      const uint8_t* row = bgr + static_cast<size_t>(y) * width * 3;
      for (int x = 0; x < width; ++x) {
        rgb[3 * x] = row[3 * x + 2];
        rgb[3 * x + 1] = row[3 * x + 1];
        rgb[3 * x + 2] = row[3 * x];
      }
      std::fwrite(rgb.data(), 1, rgb.size(), f.get());
    }
    return;
  }
#ifdef LAPMASK_WITH_PNG
  write_png(path, bgr, height, width);
#else
  throw Error("cannot write " + path + ": this build has no libpng (install libpng-dev) -- use a .ppm path");
#endif
}

}  // namespace lapmask
