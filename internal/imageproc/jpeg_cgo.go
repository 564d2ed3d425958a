//go:build cgo

package imageproc

/*
#cgo LDFLAGS: -ljpeg
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <jpeglib.h>
#include <jerror.h>

// Errors longjmp back to snap_jpeg_decode, as Pillow's decoder does.
struct snap_err {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
	char msg[JMSG_LENGTH_MAX];
	int eof;
};

static void snap_error_exit(j_common_ptr c) {
	struct snap_err *e = (struct snap_err *)c->err;
	(*c->err->format_message)(c, e->msg);
	longjmp(e->jb, 1);
}

// Warnings are ignored like Pillow does, except running out of data, which
// Pillow reports as a truncated file.
static void snap_emit(j_common_ptr c, int level) {
	struct snap_err *e = (struct snap_err *)c->err;
	if (level < 0 && c->err->msg_code == JWRN_JPEG_EOF) {
		e->eof = 1;
	}
}

// snap_jpeg_decode decodes buf into out (capacity cap bytes) with the
// settings Pillow uses: ISLOW IDCT, fancy upsampling, libjpeg's own colour
// conversion to RGB (YCbCr/RGB), grey, or CMYK (CMYK/YCCK). It stores the
// size and the number of output components and returns 0, or 1 with a
// message in msg.
static int snap_jpeg_decode(const unsigned char *buf, unsigned long len, unsigned char *out,
		size_t cap, int *w, int *h, int *comps, char *msg, size_t msglen) {
	struct jpeg_decompress_struct cinfo;
	struct snap_err err;
	memset(&cinfo, 0, sizeof(cinfo));
	memset(&err, 0, sizeof(err));
	cinfo.err = jpeg_std_error(&err.pub);
	err.pub.error_exit = snap_error_exit;
	err.pub.emit_message = snap_emit;
	if (setjmp(err.jb)) {
		snprintf(msg, msglen, "%s", err.msg);
		jpeg_destroy_decompress(&cinfo);
		return 1;
	}
	jpeg_create_decompress(&cinfo);
	jpeg_mem_src(&cinfo, (unsigned char *)buf, len);
	jpeg_read_header(&cinfo, TRUE);
	switch (cinfo.jpeg_color_space) {
	case JCS_GRAYSCALE:
		cinfo.out_color_space = JCS_GRAYSCALE;
		break;
	case JCS_CMYK:
	case JCS_YCCK:
		cinfo.out_color_space = JCS_CMYK;
		break;
	default:
		cinfo.out_color_space = JCS_RGB;
	}
	cinfo.dct_method = JDCT_ISLOW;
	cinfo.do_fancy_upsampling = TRUE;
	jpeg_start_decompress(&cinfo);
	*w = cinfo.output_width;
	*h = cinfo.output_height;
	*comps = cinfo.output_components;
	size_t stride = (size_t)cinfo.output_width * cinfo.output_components;
	if (stride * cinfo.output_height > cap) {
		snprintf(msg, msglen, "decoded size %ux%ux%d exceeds the header size",
			cinfo.output_width, cinfo.output_height, cinfo.output_components);
		jpeg_destroy_decompress(&cinfo);
		return 1;
	}
	while (cinfo.output_scanline < cinfo.output_height) {
		JSAMPROW row = out + stride * cinfo.output_scanline;
		jpeg_read_scanlines(&cinfo, &row, 1);
		if (err.eof) {
			snprintf(msg, msglen, "file is truncated");
			jpeg_destroy_decompress(&cinfo);
			return 1;
		}
	}
	jpeg_finish_decompress(&cinfo);
	jpeg_destroy_decompress(&cinfo);
	return 0;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// jpegExact reports whether JPEG decoding matches Pillow bit for bit.
const jpegExact = true

// decodeJPEG decodes a JPEG through libjpeg(-turbo), the library Pillow uses,
// so the pixels are the ones Pillow sees. w×h and the number of components
// (1, 3 or 4, from image.DecodeConfig) come from the header.
func decodeJPEG(data []byte, w, h, comps int) (*RGB, error) {
	if len(data) == 0 {
		return nil, fmt.Errorf("empty JPEG")
	}
	out := make([]byte, w*h*max(comps, 1))
	var cw, ch, ccomps C.int
	var msg [256]C.char
	rc := C.snap_jpeg_decode((*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)),
		(*C.uchar)(unsafe.Pointer(&out[0])), C.size_t(len(out)), &cw, &ch, &ccomps, &msg[0], C.size_t(len(msg)))
	if rc != 0 {
		return nil, fmt.Errorf("libjpeg: %s", C.GoString(&msg[0]))
	}
	if int(cw) != w || int(ch) != h {
		return nil, fmt.Errorf("libjpeg decoded %dx%d, header says %dx%d", cw, ch, w, h)
	}
	n := w * h
	img := &RGB{W: w, H: h}
	switch ccomps {
	case 3:
		img.Pix = out[:n*3]
	case 1:
		img.Pix = make([]uint8, n*3)
		greyToRGB(img.Pix, out[:n])
	case 4:
		img.Pix = make([]uint8, n*3)
		cmykToRGB(img.Pix, out[:n*4], true)
	default:
		return nil, fmt.Errorf("libjpeg: unsupported %d output components", ccomps)
	}
	return img, nil
}
