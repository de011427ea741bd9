#ifndef FUSEKIT_CIMAGECODECS_H
#define FUSEKIT_CIMAGECODECS_H

// PNG and JPEG coding for FuseKitImage, over libpng and libjpeg.
//
// Every function works on memory buffers, catches the libraries' errors with setjmp/longjmp
// (which Swift cannot do) and reports them as a message instead of aborting the process.
// All functions return FK_CODEC_OK on success, FK_CODEC_ERROR for corrupt or truncated data and
// FK_CODEC_UNSUPPORTED for valid data FuseKit does not read (a CMYK JPEG, an image above the
// pixel limit), with a NUL-terminated explanation written to `message` (at most
// `message_capacity` bytes).

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FK_CODEC_OK 0
#define FK_CODEC_ERROR 1
#define FK_CODEC_UNSUPPORTED 2

/// A decoded raster: rows top to bottom, samples interleaved per pixel. 8-bit samples are
/// `uint8_t`, 16-bit samples are `uint16_t` in the host's byte order. Free `pixels` with
/// `fk_codec_free`.
typedef struct {
    int32_t width;
    int32_t height;
    /// Samples per pixel: 1 gray (or palette index), 2 gray+alpha, 3 RGB, 4 RGBA.
    int32_t channels;
    /// 8 or 16.
    int32_t bit_depth;
    /// 1 when the samples are palette indices (PNG palette image decoded with
    /// `keep_palette_indices`), else 0.
    int32_t is_palette_indices;
    void *pixels;
} FKDecodedImage;

/// Decodes a PNG held in memory. Palette images are expanded to RGB (RGBA with transparency)
/// unless `keep_palette_indices` is non-zero, in which case one 8-bit index per pixel is returned.
/// Gray images below 8 bits are expanded to 8 bits; a tRNS chunk becomes an alpha channel.
/// Images of more than `max_pixels` pixels are refused before their raster is allocated.
int fk_png_decode(const uint8_t *data, size_t size, int keep_palette_indices, size_t max_pixels,
                  FKDecodedImage *out, char *message, size_t message_capacity);

/// Encodes interleaved samples as PNG into a new buffer (free it with `fk_codec_free`).
/// `channels` 1..4, `bit_depth` 8 or 16 (16-bit samples as host-order `uint16_t`).
/// With `palette_count` > 0 (1..256) and `channels` 1, `bit_depth` 8, writes an indexed image
/// whose palette is `palette_rgb` (3 bytes per entry).
int fk_png_encode(const void *pixels, int32_t width, int32_t height, int32_t channels, int32_t bit_depth,
                  const uint8_t *palette_rgb, int32_t palette_count,
                  uint8_t **out_data, size_t *out_size, char *message, size_t message_capacity);

/// Decodes a baseline or progressive JPEG held in memory to 8-bit gray (1 channel) or RGB (3).
/// Any warning of libjpeg about damaged data (which it would otherwise paper over with made-up
/// pixels) is an error, and so is an image of more than `max_pixels` pixels.
int fk_jpeg_decode(const uint8_t *data, size_t size, size_t max_pixels, FKDecodedImage *out,
                   char *message, size_t message_capacity);

/// Encodes 8-bit gray (`channels` 1) or RGB (`channels` 3) samples as JPEG with `quality` 1..100
/// into a new buffer (free it with `fk_codec_free`).
int fk_jpeg_encode(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels, int32_t quality,
                   uint8_t **out_data, size_t *out_size, char *message, size_t message_capacity);

/// Frees a buffer returned by this module.
void fk_codec_free(void *pointer);

#ifdef __cplusplus
}
#endif

#endif
