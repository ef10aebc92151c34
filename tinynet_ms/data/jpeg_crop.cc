// One rectangle of a JPEG, decoded at a reduced DCT scale: a training crop needs only its own pixels, and only at
// about the network's resolution. libjpeg-turbo scales in the inverse DCT (m/8; the caller picks m = 1, 2, 4 or 8),
// skips the rows above the crop without their inverse DCT (jpeg_skip_scanlines), runs its inverse DCT and colour
// conversion only on the crop's columns (jpeg_crop_scanline) and stops after the crop's last row.
//
// Built by tinynet_ms/data/jpeg.py with g++ against the system's libjpeg(-turbo) (jpeglib.h).
#include <csetjmp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include <jpeglib.h>

namespace {

enum Status { kOk = 0, kError = 1, kCorrupt = 2, kUnsupported = 3, kBadRegion = 4 };

struct ErrorManager {
  jpeg_error_mgr base;
  jmp_buf jump;
};

void on_error(j_common_ptr cinfo) { longjmp(reinterpret_cast<ErrorManager*>(cinfo->err)->jump, 1); }

void silent(j_common_ptr) {}  // warnings are counted (num_warnings), not printed: the caller decides

}  // namespace

// Decodes rows [y0, y1) and columns [x0, x1) of the image scaled by scale_num/8 into out (RGB, (y1 - y0) rows of
// (x1 - x0) * 3 bytes). Returns a Status: anything but kOk leaves out undefined, and the caller decodes otherwise
// (CMYK/YCCK files, corrupt data: libjpeg would fill a truncated file with grey where PIL raises).
extern "C" int tinynet_jpeg_decode_region(const uint8_t* data, size_t size, int scale_num, int x0, int y0, int x1,
                                          int y1, uint8_t* out) {
  if (scale_num < 1 || scale_num > 8 || x0 < 0 || y0 < 0 || x1 <= x0 || y1 <= y0) return kBadRegion;
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  cinfo.err = jpeg_std_error(&err.base);
  err.base.error_exit = on_error;
  err.base.output_message = silent;
  jpeg_create_decompress(&cinfo);
  // No object with a destructor lives between here and a longjmp: libjpeg's pool owns the row buffer.
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return kError;
  }
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
    jpeg_destroy_decompress(&cinfo);
    return kUnsupported;
  }
  cinfo.out_color_space = JCS_RGB;
  cinfo.scale_num = static_cast<unsigned int>(scale_num);
  cinfo.scale_denom = 8;
  jpeg_start_decompress(&cinfo);
  if (cinfo.output_components != 3 || static_cast<JDIMENSION>(x1) > cinfo.output_width ||
      static_cast<JDIMENSION>(y1) > cinfo.output_height) {
    jpeg_destroy_decompress(&cinfo);
    return kBadRegion;
  }
  JDIMENSION left = static_cast<JDIMENSION>(x0), width = static_cast<JDIMENSION>(x1 - x0);
  jpeg_crop_scanline(&cinfo, &left, &width);  // widened to whole iMCUs: left <= x0, left + width >= x1
  JSAMPARRAY row = (*cinfo.mem->alloc_sarray)(reinterpret_cast<j_common_ptr>(&cinfo), JPOOL_IMAGE, width * 3, 1);
  if (y0 > 0) jpeg_skip_scanlines(&cinfo, static_cast<JDIMENSION>(y0));
  const size_t out_row = static_cast<size_t>(x1 - x0) * 3;
  const size_t offset = static_cast<size_t>(x0 - static_cast<int>(left)) * 3;
  for (int y = y0; y < y1; ++y) {
    if (jpeg_read_scanlines(&cinfo, row, 1) != 1) {
      jpeg_destroy_decompress(&cinfo);
      return kCorrupt;
    }
    std::memcpy(out + static_cast<size_t>(y - y0) * out_row, row[0] + offset, out_row);
  }
  const long warnings = err.base.num_warnings;
  jpeg_abort_decompress(&cinfo);  // the rows below the crop are never decoded
  jpeg_destroy_decompress(&cinfo);
  return warnings ? kCorrupt : kOk;
}
