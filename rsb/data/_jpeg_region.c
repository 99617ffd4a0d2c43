/* Decode one rectangle of a JPEG with libjpeg-turbo, skipping the work outside it.
 *
 * Why: a RandomResizedCrop keeps on average about half of the photo, yet Pillow and simplejpeg decode all of
 * it; decoding is ~40% of the training transform's time per image. libjpeg-turbo (>= 1.5) can skip rows
 * (jpeg_skip_scanlines: no inverse DCT, upsampling or colour conversion for them), stop after the last row
 * needed (nothing below is even entropy-decoded), and convert only the needed columns (jpeg_crop_scanline).
 * No Python package exposes that, hence this small extension.
 *
 * decode_region(data, x, y, w, h) -> bytearray of h*w*3 RGB bytes: pixels [y, y+h) x [x, x+w) of the image,
 * the same as a full decode cropped (ISLOW DCT and fancy upsampling, as Pillow and simplejpeg decode by
 * default). To keep it so at the edges of the rectangle, where fancy upsampling and the iMCU alignment of the
 * cropped decode reach neighbouring pixels, a margin of MARGIN pixels is decoded around it and dropped.
 * Raises ValueError on any libjpeg error or warning (damaged data); callers fall back to a full decode.
 * info(data) -> (width, height, jpeg_color_space) from the header.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <jpeglib.h>

#define MARGIN 16

struct error_mgr {
    struct jpeg_error_mgr pub;
    jmp_buf escape;
    char message[JMSG_LENGTH_MAX];
};

static void on_error(j_common_ptr cinfo) {
    struct error_mgr *err = (struct error_mgr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, err->message);
    longjmp(err->escape, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
    if (level < 0) { /* a warning: corrupt data; treat as an error so the caller's full decoder decides */
        on_error(cinfo);
    }
}

/* Route libjpeg's errors and warnings to `err` (the caller then setjmp()s on err->escape) and create the
 * decompressor. */
static void create(struct jpeg_decompress_struct *cinfo, struct error_mgr *err) {
    cinfo->err = jpeg_std_error(&err->pub);
    err->pub.error_exit = on_error;
    err->pub.emit_message = on_message;
    err->message[0] = 0;
    jpeg_create_decompress(cinfo);
}

/* All libjpeg work, without the Python API (it runs with the GIL released, and libjpeg errors longjmp here).
 * Returns 0, or 1 for a libjpeg error or warning, 2 for a region outside the image, 3 for no memory; `message`
 * (MESSAGE_SIZE bytes) then says why. */
#define MESSAGE_SIZE (JMSG_LENGTH_MAX + 128)

static int decode_into(const unsigned char *buf, unsigned long len, int x, int y, int w, int h,
                       unsigned char *dst, char *message) {
    struct jpeg_decompress_struct cinfo;
    struct error_mgr err;
    JSAMPLE *volatile row = NULL; /* volatile: assigned after setjmp, freed after a longjmp */
    create(&cinfo, &err);
    if (setjmp(err.escape)) {
        jpeg_destroy_decompress(&cinfo);
        free(row);
        snprintf(message, MESSAGE_SIZE, "libjpeg: %s", err.message);
        return 1;
    }
    jpeg_mem_src(&cinfo, buf, len);
    jpeg_read_header(&cinfo, TRUE);
    int width = (int)cinfo.image_width, height = (int)cinfo.image_height;
    if (x < 0 || y < 0 || x + w > width || y + h > height) {
        jpeg_destroy_decompress(&cinfo);
        snprintf(message, MESSAGE_SIZE, "region %d,%d %dx%d outside the %dx%d image", x, y, w, h, width, height);
        return 2;
    }
    cinfo.out_color_space = JCS_RGB;
    cinfo.dct_method = JDCT_ISLOW;
    cinfo.do_fancy_upsampling = TRUE;

    /* The decoded window: the rectangle plus a margin, clamped to the image. */
    int wx0 = x - MARGIN < 0 ? 0 : x - MARGIN;
    int wy0 = y - MARGIN < 0 ? 0 : y - MARGIN;
    int wx1 = x + w + MARGIN > width ? width : x + w + MARGIN;
    int wy1 = y + h + MARGIN > height ? height : y + h + MARGIN;

    jpeg_start_decompress(&cinfo);
    JDIMENSION xoffset = 0, cwidth = (JDIMENSION)width;
    if (wx1 - wx0 < width) {
        xoffset = (JDIMENSION)wx0;
        cwidth = (JDIMENSION)(wx1 - wx0);
        jpeg_crop_scanline(&cinfo, &xoffset, &cwidth); /* widens to iMCU boundaries */
    }
    row = (JSAMPLE *)malloc((size_t)cinfo.output_width * 3);
    if (row == NULL) {
        jpeg_destroy_decompress(&cinfo);
        snprintf(message, MESSAGE_SIZE, "out of memory");
        return 3;
    }
    size_t skip_bytes = (size_t)(x - (int)xoffset) * 3, row_bytes = (size_t)w * 3;
    if (wy0 > 0) {
        jpeg_skip_scanlines(&cinfo, (JDIMENSION)wy0);
    }
    while ((int)cinfo.output_scanline < wy1) {
        int line = (int)cinfo.output_scanline;
        JSAMPROW rows[1] = {row};
        jpeg_read_scanlines(&cinfo, rows, 1);
        if (line >= y && line < y + h) {
            memcpy(dst + (size_t)(line - y) * row_bytes, row + skip_bytes, row_bytes);
        }
    }
    jpeg_abort_decompress(&cinfo); /* the rows below the window are never decoded */
    jpeg_destroy_decompress(&cinfo);
    free(row);
    return 0;
}

static PyObject *decode_region(PyObject *self, PyObject *args) {
    Py_buffer data;
    int x, y, w, h, rc;
    char message[MESSAGE_SIZE];
    if (!PyArg_ParseTuple(args, "y*iiii", &data, &x, &y, &w, &h)) {
        return NULL;
    }
    if (w <= 0 || h <= 0) {
        PyBuffer_Release(&data);
        PyErr_Format(PyExc_ValueError, "empty region %dx%d", w, h);
        return NULL;
    }
    PyObject *out = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)w * h * 3);
    if (out == NULL) {
        PyBuffer_Release(&data);
        return NULL;
    }
    unsigned char *dst = (unsigned char *)PyByteArray_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    rc = decode_into((const unsigned char *)data.buf, (unsigned long)data.len, x, y, w, h, dst, message);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data);
    if (rc != 0) {
        Py_DECREF(out);
        if (rc == 3) {
            return PyErr_NoMemory();
        }
        PyErr_SetString(PyExc_ValueError, message);
        return NULL;
    }
    return out;
}

static PyObject *info(PyObject *self, PyObject *args) {
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "y*", &data)) {
        return NULL;
    }
    struct jpeg_decompress_struct cinfo;
    struct error_mgr err;
    create(&cinfo, &err);
    if (setjmp(err.escape)) {
        jpeg_destroy_decompress(&cinfo);
        PyBuffer_Release(&data);
        PyErr_Format(PyExc_ValueError, "libjpeg: %s", err.message);
        return NULL;
    }
    jpeg_mem_src(&cinfo, (const unsigned char *)data.buf, (unsigned long)data.len);
    jpeg_read_header(&cinfo, TRUE);
    PyObject *result = Py_BuildValue("(iii)", (int)cinfo.image_width, (int)cinfo.image_height,
                                     (int)cinfo.jpeg_color_space);
    jpeg_destroy_decompress(&cinfo);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"decode_region", decode_region, METH_VARARGS, "decode_region(data, x, y, w, h) -> bytearray (h*w*3 RGB)"},
    {"info", info, METH_VARARGS, "info(data) -> (width, height, jpeg_color_space)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_jpeg_region", NULL, -1, methods};

PyMODINIT_FUNC PyInit__jpeg_region(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL) {
        PyModule_AddIntConstant(m, "JCS_GRAYSCALE", JCS_GRAYSCALE);
        PyModule_AddIntConstant(m, "JCS_RGB", JCS_RGB);
        PyModule_AddIntConstant(m, "JCS_YCbCr", JCS_YCbCr);
        PyModule_AddIntConstant(m, "MARGIN", MARGIN);
    }
    return m;
}
