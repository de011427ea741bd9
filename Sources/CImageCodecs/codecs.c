#include "CImageCodecs.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>
#include <jpeglib.h>
#include <jerror.h>

// The largest deflate expansion: 258 bytes from 2 bits at best, so a zlib stream of n bytes
// inflates to at most about 1032 n bytes (plus a little for the stream's own header).
#define FK_DEFLATE_MAX_RATIO 1032

static void fk_set_message(char *message, size_t capacity, const char *format, ...) {
    if (message == NULL || capacity == 0) return;
    va_list args;
    va_start(args, format);
    vsnprintf(message, capacity, format, args);
    va_end(args);
}

static int fk_host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

void fk_codec_free(void *pointer) { free(pointer); }

// MARK: - PNG

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t offset;
    int ran_out;
} fk_png_reader;

typedef struct {
    uint8_t *data;
    size_t size;
    size_t capacity;
} fk_png_writer;

typedef struct {
    char text[256];
} fk_png_error_text;

static void fk_png_error_handler(png_structp png, png_const_charp text) {
    fk_png_error_text *sink = (fk_png_error_text *)png_get_error_ptr(png);
    if (sink != NULL) snprintf(sink->text, sizeof sink->text, "%s", text != NULL ? text : "unknown error");
    png_longjmp(png, 1);
}

static void fk_png_warning_handler(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;  // warnings are not errors; stay silent (no stderr output from a library)
}

static void fk_png_read_data(png_structp png, png_bytep out, size_t count) {
    fk_png_reader *reader = (fk_png_reader *)png_get_io_ptr(png);
    if (reader->size - reader->offset < count) {
        reader->ran_out = 1;
        png_error(png, "Read Error");
    }
    memcpy(out, reader->data + reader->offset, count);
    reader->offset += count;
}

static void fk_png_write_data(png_structp png, png_bytep in, size_t count) {
    fk_png_writer *writer = (fk_png_writer *)png_get_io_ptr(png);
    if (writer->capacity - writer->size < count) {
        size_t capacity = writer->capacity == 0 ? 65536 : writer->capacity;
        while (capacity - writer->size < count) capacity *= 2;
        uint8_t *grown = (uint8_t *)realloc(writer->data, capacity);
        if (grown == NULL) png_error(png, "out of memory");
        writer->data = grown;
        writer->capacity = capacity;
    }
    memcpy(writer->data + writer->size, in, count);
    writer->size += count;
}

static void fk_png_flush(png_structp png) { (void)png; }

// libpng allocates an ancillary chunk's declared length before reading it (png_handle_tEXt and
// friends do not apply png_set_chunk_malloc_max), so a few bytes declaring a 1.5 GB text chunk
// allocate 1.5 GB. With the whole file in memory, every chunk up to IEND is checked to fit in
// it first.
static int fk_png_check_chunk_lengths(const uint8_t *data, size_t size, char *message, size_t message_capacity) {
    size_t offset = 8;
    while (size - offset >= 12) {
        const uint32_t length = (uint32_t)data[offset] << 24 | (uint32_t)data[offset + 1] << 16 |
                                (uint32_t)data[offset + 2] << 8 | data[offset + 3];
        const uint8_t *type = data + offset + 4;
        if (length > size - offset - 12) {
            char name[5];
            for (int i = 0; i < 4; i++) name[i] = type[i] >= 0x20 && type[i] < 0x7F ? (char)type[i] : '?';
            name[4] = 0;
            fk_set_message(message, message_capacity, "truncated PNG data (chunk '%s' at byte %zu declares %u bytes, %zu remain)",
                           name, offset, (unsigned)length, size - offset - 12);
            return FK_CODEC_ERROR;
        }
        if (memcmp(type, "IEND", 4) == 0) return FK_CODEC_OK;
        offset += 12 + (size_t)length;
    }
    fk_set_message(message, message_capacity, "truncated PNG data (no IEND chunk)");
    return FK_CODEC_ERROR;
}

int fk_png_decode(const uint8_t *data, size_t size, int keep_palette_indices, size_t max_pixels,
                  FKDecodedImage *out, char *message, size_t message_capacity) {
    memset(out, 0, sizeof *out);
    if (size < 8 || png_sig_cmp((png_const_bytep)data, 0, 8) != 0) {
        fk_set_message(message, message_capacity, size < 8 ? "file too short to be a PNG" : "not a PNG file (bad signature)");
        return FK_CODEC_ERROR;
    }
    if (fk_png_check_chunk_lengths(data, size, message, message_capacity) != FK_CODEC_OK) return FK_CODEC_ERROR;
    fk_png_error_text error_text;
    error_text.text[0] = 0;
    fk_png_reader reader = {data, size, 0, 0};

    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &error_text, fk_png_error_handler, fk_png_warning_handler);
    if (png == NULL) {
        fk_set_message(message, message_capacity, "libpng: cannot create read structure");
        return FK_CODEC_ERROR;
    }
    png_infop info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        fk_set_message(message, message_capacity, "libpng: cannot create info structure");
        return FK_CODEC_ERROR;
    }

    uint8_t *volatile pixels = NULL;
    png_bytep *volatile rows = NULL;
    // Set (with the message written) when FuseKit itself refuses the image.
    volatile int refused = FK_CODEC_OK;

    if (setjmp(png_jmpbuf(png))) {
        free(pixels);
        free(rows);
        png_destroy_read_struct(&png, &info, NULL);
        if (refused != FK_CODEC_OK) return refused;
        if (reader.ran_out) {
            fk_set_message(message, message_capacity, "truncated PNG data (libpng: %s)", error_text.text);
        } else {
            fk_set_message(message, message_capacity, "corrupt PNG data (libpng: %s)", error_text.text);
        }
        return FK_CODEC_ERROR;
    }

    png_set_read_fn(png, &reader, fk_png_read_data);
    // Bounds what libpng allocates for decompressed text and ICC profiles (raw chunks were
    // checked against the file's size above).
    png_set_chunk_malloc_max(png, (size_t)8 << 20);
    png_read_info(png, info);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    if ((uint64_t)width * height > max_pixels) {
        fk_set_message(message, message_capacity, "PNG image of %ux%u pixels is larger than the limit of %zu pixels",
                       (unsigned)width, (unsigned)height, max_pixels);
        refused = FK_CODEC_UNSUPPORTED;
        png_longjmp(png, 1);
    }
    // Every pixel is in the compressed data, so a file too short to hold its pixels even at
    // deflate's best ratio is truncated: refuse it before allocating the raster it claims.
    const uint64_t pixel_bits = (uint64_t)width * height * (uint64_t)png_get_channels(png, info) * (uint64_t)bit_depth;
    if (pixel_bits / 8 > (uint64_t)size * FK_DEFLATE_MAX_RATIO + 1024) {
        fk_set_message(message, message_capacity, "truncated PNG data (%zu bytes cannot hold %ux%u pixels)",
                       size, (unsigned)width, (unsigned)height);
        refused = FK_CODEC_ERROR;
        png_longjmp(png, 1);
    }

    int palette_indices = 0;
    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        if (keep_palette_indices) {
            png_set_packing(png);
            palette_indices = 1;
        } else {
            png_set_palette_to_rgb(png);
            if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
        }
    } else {
        if ((color_type & PNG_COLOR_MASK_COLOR) == 0 && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
        if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
    }
    if (bit_depth == 16 && fk_host_is_little_endian()) png_set_swap(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);

    const int channels = png_get_channels(png, info);
    const int out_depth = png_get_bit_depth(png, info);
    const size_t row_bytes = png_get_rowbytes(png, info);
    if (channels < 1 || channels > 4 || (out_depth != 8 && out_depth != 16) ||
        row_bytes != (size_t)width * (size_t)channels * (size_t)(out_depth / 8)) {
        png_error(png, "unsupported pixel layout after transformation");
    }
    pixels = (uint8_t *)malloc(row_bytes * height);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * height);
    if (pixels == NULL || rows == NULL) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < height; y++) rows[y] = pixels + (size_t)y * row_bytes;

    png_read_image(png, rows);
    png_read_end(png, NULL);

    out->width = (int32_t)width;
    out->height = (int32_t)height;
    out->channels = channels;
    out->bit_depth = out_depth;
    out->is_palette_indices = palette_indices;
    out->pixels = pixels;
    free(rows);
    png_destroy_read_struct(&png, &info, NULL);
    return FK_CODEC_OK;
}

int fk_png_encode(const void *pixels, int32_t width, int32_t height, int32_t channels, int32_t bit_depth,
                  const uint8_t *palette_rgb, int32_t palette_count,
                  uint8_t **out_data, size_t *out_size, char *message, size_t message_capacity) {
    *out_data = NULL;
    *out_size = 0;
    if (width <= 0 || height <= 0 || channels < 1 || channels > 4 || (bit_depth != 8 && bit_depth != 16)) {
        fk_set_message(message, message_capacity, "invalid PNG parameters (%dx%d, %d channels, %d bits)",
                       width, height, channels, bit_depth);
        return FK_CODEC_ERROR;
    }
    if (palette_count > 0 && (channels != 1 || bit_depth != 8 || palette_count > 256 || palette_rgb == NULL)) {
        fk_set_message(message, message_capacity, "an indexed PNG needs 1 channel of 8-bit indices and 1..256 palette entries");
        return FK_CODEC_ERROR;
    }
    fk_png_error_text error_text;
    error_text.text[0] = 0;
    fk_png_writer writer = {NULL, 0, 0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &error_text, fk_png_error_handler, fk_png_warning_handler);
    if (png == NULL) {
        fk_set_message(message, message_capacity, "libpng: cannot create write structure");
        return FK_CODEC_ERROR;
    }
    png_infop info = png_create_info_struct(png);
    if (info == NULL) {
        png_destroy_write_struct(&png, NULL);
        fk_set_message(message, message_capacity, "libpng: cannot create info structure");
        return FK_CODEC_ERROR;
    }
    png_bytep *volatile rows = NULL;
    if (setjmp(png_jmpbuf(png))) {
        free(rows);
        free(writer.data);
        png_destroy_write_struct(&png, &info);
        fk_set_message(message, message_capacity, "PNG encoding failed (libpng: %s)", error_text.text);
        return FK_CODEC_ERROR;
    }
    png_set_write_fn(png, &writer, fk_png_write_data, fk_png_flush);

    int color_type;
    if (palette_count > 0) {
        color_type = PNG_COLOR_TYPE_PALETTE;
    } else {
        static const int types[4] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
        color_type = types[channels - 1];
    }
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, bit_depth, color_type,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (palette_count > 0) {
        png_color palette[256];
        for (int i = 0; i < palette_count; i++) {
            palette[i].red = palette_rgb[3 * i];
            palette[i].green = palette_rgb[3 * i + 1];
            palette[i].blue = palette_rgb[3 * i + 2];
        }
        png_set_PLTE(png, info, palette, palette_count);
    }
    png_write_info(png, info);
    if (bit_depth == 16 && fk_host_is_little_endian()) png_set_swap(png);

    const size_t row_bytes = (size_t)width * (size_t)channels * (size_t)(bit_depth / 8);
    rows = (png_bytep *)malloc(sizeof(png_bytep) * (size_t)height);
    if (rows == NULL) png_error(png, "out of memory");
    for (int32_t y = 0; y < height; y++) rows[y] = (png_bytep)pixels + (size_t)y * row_bytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);

    free(rows);
    png_destroy_write_struct(&png, &info);
    *out_data = writer.data;
    *out_size = writer.size;
    return FK_CODEC_OK;
}

// MARK: - JPEG

typedef struct {
    struct jpeg_error_mgr manager;
    jmp_buf jump;
    char text[JMSG_LENGTH_MAX];
    int premature_end;
    // Whether warnings about damaged data stop decoding (off while encoding).
    int stop_on_damage;
} fk_jpeg_error;

static void fk_jpeg_error_exit(j_common_ptr info) {
    fk_jpeg_error *error = (fk_jpeg_error *)info->err;
    (*info->err->format_message)(info, error->text);
    longjmp(error->jump, 1);
}

static void fk_jpeg_emit_message(j_common_ptr info, int level) {
    fk_jpeg_error *error = (fk_jpeg_error *)info->err;
    if (level >= 0) return;  // trace messages
    info->err->num_warnings++;
    const int code = info->err->msg_code;
    // Warnings about metadata leave the pixels intact.
    if (code == JWRN_ADOBE_XFORM || code == JWRN_JFIF_MAJOR || code == JWRN_BOGUS_ICC) return;
    // Every other warning means damaged data, which libjpeg would decode into made-up pixels
    // (a truncated stream padded with gray, a bad Huffman code, garbage between segments): stop
    // at once, as TurboJPEG's stop-on-warning does, so the work done stays bounded by the data.
    if (!error->stop_on_damage) return;
    error->premature_end = code == JWRN_JPEG_EOF;
    (*info->err->format_message)(info, error->text);
    longjmp(error->jump, 1);
}

static void fk_jpeg_output_message(j_common_ptr info) { (void)info; }

static void fk_jpeg_install_errors(fk_jpeg_error *error) {
    jpeg_std_error(&error->manager);
    error->manager.error_exit = fk_jpeg_error_exit;
    error->manager.emit_message = fk_jpeg_emit_message;
    error->manager.output_message = fk_jpeg_output_message;
    error->text[0] = 0;
    error->premature_end = 0;
    error->stop_on_damage = 0;
}

int fk_jpeg_decode(const uint8_t *data, size_t size, size_t max_pixels, FKDecodedImage *out,
                   char *message, size_t message_capacity) {
    memset(out, 0, sizeof *out);
    if (size < 3 || data[0] != 0xFF || data[1] != 0xD8) {
        fk_set_message(message, message_capacity, "not a JPEG file (bad signature)");
        return FK_CODEC_ERROR;
    }
#if SIZE_MAX > ULONG_MAX
    if (size > ULONG_MAX) {
        fk_set_message(message, message_capacity, "JPEG data too large");
        return FK_CODEC_ERROR;
    }
#endif
    struct jpeg_decompress_struct info;
    fk_jpeg_error error;
    uint8_t *volatile pixels = NULL;
    info.err = jpeg_std_error(&error.manager);
    fk_jpeg_install_errors(&error);
    error.stop_on_damage = 1;
    if (setjmp(error.jump)) {
        free(pixels);
        jpeg_destroy_decompress(&info);
        fk_set_message(message, message_capacity, "%s JPEG data (libjpeg: %s)", error.premature_end ? "truncated" : "corrupt", error.text);
        return FK_CODEC_ERROR;
    }
    jpeg_create_decompress(&info);
    // Bounds libjpeg's whole-image buffers (a progressive image's coefficients: 2 bytes per
    // sample, up to 3 full-resolution components), which it allocates before reading any scan.
    info.mem->max_memory_to_use = (long)(max_pixels < LONG_MAX / 8 ? max_pixels * 8 : LONG_MAX);
    jpeg_mem_src(&info, (const unsigned char *)data, (unsigned long)size);
    jpeg_read_header(&info, TRUE);
    if ((uint64_t)info.image_width * info.image_height > max_pixels) {
        fk_set_message(message, message_capacity, "JPEG image of %ux%u pixels is larger than the limit of %zu pixels",
                       (unsigned)info.image_width, (unsigned)info.image_height, max_pixels);
        jpeg_destroy_decompress(&info);
        return FK_CODEC_UNSUPPORTED;
    }
    int channels;
    switch (info.jpeg_color_space) {
    case JCS_GRAYSCALE:
        info.out_color_space = JCS_GRAYSCALE;
        channels = 1;
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        jpeg_destroy_decompress(&info);
        fk_set_message(message, message_capacity, "unsupported JPEG colour space (CMYK/YCCK)");
        return FK_CODEC_UNSUPPORTED;
    default:
        info.out_color_space = JCS_RGB;
        channels = 3;
        break;
    }
    jpeg_start_decompress(&info);
    if (info.output_components != channels) {
        jpeg_destroy_decompress(&info);
        fk_set_message(message, message_capacity, "unexpected JPEG output of %d components", info.output_components);
        return FK_CODEC_ERROR;
    }
    const size_t row_bytes = (size_t)info.output_width * (size_t)channels;
    if (info.output_width != info.image_width || info.output_height != info.image_height) {
        jpeg_destroy_decompress(&info);
        fk_set_message(message, message_capacity, "unexpected JPEG output of %ux%u for a %ux%u image",
                       (unsigned)info.output_width, (unsigned)info.output_height, (unsigned)info.image_width, (unsigned)info.image_height);
        return FK_CODEC_ERROR;
    }
    pixels = (uint8_t *)malloc(row_bytes * info.output_height);
    if (pixels == NULL) {
        jpeg_destroy_decompress(&info);
        fk_set_message(message, message_capacity, "out of memory");
        return FK_CODEC_ERROR;
    }
    while (info.output_scanline < info.output_height) {
        JSAMPROW row = pixels + (size_t)info.output_scanline * row_bytes;
        jpeg_read_scanlines(&info, &row, 1);
    }
    jpeg_finish_decompress(&info);
    out->width = (int32_t)info.output_width;
    out->height = (int32_t)info.output_height;
    jpeg_destroy_decompress(&info);
    out->channels = channels;
    out->bit_depth = 8;
    out->is_palette_indices = 0;
    out->pixels = pixels;
    return FK_CODEC_OK;
}

int fk_jpeg_encode(const uint8_t *pixels, int32_t width, int32_t height, int32_t channels, int32_t quality,
                   uint8_t **out_data, size_t *out_size, char *message, size_t message_capacity) {
    *out_data = NULL;
    *out_size = 0;
    if (width <= 0 || height <= 0 || (channels != 1 && channels != 3)) {
        fk_set_message(message, message_capacity, "invalid JPEG parameters (%dx%d, %d channels; JPEG takes gray or RGB)",
                       width, height, channels);
        return FK_CODEC_ERROR;
    }
    struct jpeg_compress_struct info;
    fk_jpeg_error error;
    unsigned char *buffer = NULL;
    unsigned long buffer_size = 0;
    info.err = jpeg_std_error(&error.manager);
    fk_jpeg_install_errors(&error);
    if (setjmp(error.jump)) {
        // The destination buffer may already have been released or moved by libjpeg while it
        // grew; leaving it is safer than a double free on this (practically unreachable) path.
        jpeg_destroy_compress(&info);
        fk_set_message(message, message_capacity, "JPEG encoding failed (libjpeg: %s)", error.text);
        return FK_CODEC_ERROR;
    }
    jpeg_create_compress(&info);
    jpeg_mem_dest(&info, &buffer, &buffer_size);
    info.image_width = (JDIMENSION)width;
    info.image_height = (JDIMENSION)height;
    info.input_components = channels;
    info.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&info);
    jpeg_set_quality(&info, quality < 1 ? 1 : (quality > 100 ? 100 : quality), TRUE);
    jpeg_start_compress(&info, TRUE);
    const size_t row_bytes = (size_t)width * (size_t)channels;
    while (info.next_scanline < info.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)info.next_scanline * row_bytes);
        jpeg_write_scanlines(&info, &row, 1);
    }
    jpeg_finish_compress(&info);
    jpeg_destroy_compress(&info);
    *out_data = (uint8_t *)buffer;
    *out_size = (size_t)buffer_size;
    return FK_CODEC_OK;
}
