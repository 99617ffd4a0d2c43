/* The two RandAugment ops where one C pass clearly beats both torch and Pillow: Pillow's arithmetic, as
 * rsb.data.tensor_ops has it.
 *
 * Why these two only: rsb.data.tensor_ops's torch versions of Shear/Translate and Sharpness take 5 to 12
 * full-image tensor passes per op (gather, convert, each term, clip); here each output pixel is read and written
 * once: Shear and Translate 7-10x Pillow's time, Sharpness ~4x (benchmarks/RESULTS_speed.md). The other ops
 * (table ops, Color, Contrast, Brightness) had C passes too, but they gained 0.7-1.4x Pillow, not enough to be
 * worth a second implementation; they now have one, in torch. The arithmetic here is the torch fallback's
 * (Pillow's formulas in single precision), and tests/test_tensor_ops.py checks both against timm's Pillow ops.
 *
 * shift_lines(src, channels, height, width, axis, shifts, bicubic, fill) -> bytearray
 *   src: planar uint8 (channels x height x width), contiguous. axis 2: each row y is sampled at positions
 *   i + 0.5 + shifts[y] (shifts: float64, one per row); axis 1: each column x at j + 0.5 + shifts[x]. A position
 *   outside [0, length) gives fill[c]; taps beyond the edges repeat the edge pixel (Pillow's clamping).
 *   bicubic: 1 for Pillow's BICUBIC (a = -1), 0 for BILINEAR.
 *
 * sharpness(src, channels, height, width, factor) -> bytearray
 *   Pillow's ImageEnhance.Sharpness: Image.blend(smooth, img, factor) = (UINT8)(deg + factor * (img - deg)) in
 *   single precision, clipped, with deg = Pillow's SMOOTH filter (border rows and columns unfiltered), per plane.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static inline int clampi(int v, int hi) { return v < 0 ? 0 : (v > hi ? hi : v); }

static inline unsigned char to_u8(float v) { /* Pillow clips, then truncates; branch-free so loops vectorise */
    v = v < 0.0f ? 0.0f : v;
    v = v > 255.0f ? 255.0f : v;
    return (unsigned char)(int)v;
}

/* One line of n samples: out[i] from in (stride 1), shifted by s. */
static void shift_line(const unsigned char *in, unsigned char *out, int n, double s, int bicubic,
                       unsigned char fill) {
    double base_d = floor(s);
    int base = (int)base_d;
    float d = (float)(s - base_d);
    /* Inside [lo, hi): the positions i + 0.5 + s in [0, n), computed as the Python side computes them. */
    int lo = 0, hi = n;
    while (lo < n && ((double)lo + 0.5) + s < 0.0) lo++;
    while (hi > lo && ((double)(hi - 1) + 0.5) + s >= (double)n) hi--;
    memset(out, fill, (size_t)lo);
    memset(out + hi, fill, (size_t)(n - hi));
    if (bicubic) {
        /* taps in[i + base - 1 .. i + base + 2]; no clamping needed for i in [a, b) */
        int a = clampi(1 - base, n), b = clampi(n - 2 - base, n);
        if (a < lo) a = lo;
        if (b > hi) b = hi;
        if (b < a) b = a;
        for (int i = lo; i < hi; i++) {
            if (i == a) { /* the interior: no clamping, a loop the compiler vectorises */
                for (; i < b; i++) {
                    const unsigned char *p = in + i + base - 1;
                    float v0 = p[0], v1 = p[1], v2 = p[2], v3 = p[3];
                    float x = v1 - v0;
                    float p3 = (v2 - v3) - 2.0f * x;
                    float p4 = (x - v2) + v3;
                    float p2 = (v2 - v0) + (p3 + p4 * d) * d;
                    out[i] = to_u8(v1 + p2 * d);
                }
                if (i >= hi) break;
            }
            int j = i + base;
            float v0 = in[clampi(j - 1, n - 1)], v1 = in[clampi(j, n - 1)];
            float v2 = in[clampi(j + 1, n - 1)], v3 = in[clampi(j + 2, n - 1)];
            float x = v1 - v0;
            float p3 = (v2 - v3) - 2.0f * x;
            float p4 = (x - v2) + v3;
            float p2 = (v2 - v0) + (p3 + p4 * d) * d;
            out[i] = to_u8(v1 + p2 * d);
        }
    } else {
        for (int i = lo; i < hi; i++) {
            int j = i + base;
            float v0 = in[clampi(j, n - 1)], v1 = in[clampi(j + 1, n - 1)];
            out[i] = to_u8(v0 + (v1 - v0) * d);
        }
    }
}

static void transpose(const unsigned char *in, unsigned char *out, int rows, int cols) {
    const int block = 32;
    for (int r0 = 0; r0 < rows; r0 += block)
        for (int c0 = 0; c0 < cols; c0 += block)
            for (int r = r0; r < r0 + block && r < rows; r++)
                for (int c = c0; c < c0 + block && c < cols; c++)
                    out[(size_t)c * rows + r] = in[(size_t)r * cols + c];
}

static inline unsigned char blend1(float deg, unsigned char v, float f) {
    return to_u8(((float)v - deg) * f + deg);
}

/* The work of sharpness(), on plain arguments: no pointer here may alias them, so the loops vectorise. */
static void sharpness_into(const unsigned char *restrict in, unsigned char *restrict dst, int channels, int height,
                           int width, float f) {
    size_t plane = (size_t)height * width;
    for (int c = 0; c < channels; c++) {
        const unsigned char *p = in + c * plane;
        unsigned char *q = dst + c * plane;
        for (int y = 0; y < height; y++) {
            size_t row = (size_t)y * width;
            if (y == 0 || y == height - 1 || width < 3) { /* border rows stay unfiltered, as in Pillow */
                for (int x = 0; x < width; x++) q[row + x] = blend1((float)p[row + x], p[row + x], f);
                continue;
            }
            const unsigned char *a = p + row - width, *m = p + row, *b = p + row + width;
            q[row] = blend1((float)m[0], m[0], f);
            q[row + width - 1] = blend1((float)m[width - 1], m[width - 1], f);
            for (int x = 1; x < width - 1; x++) {
                int ring = a[x - 1] + a[x] + a[x + 1] + m[x - 1] + m[x + 1] + b[x - 1] + b[x] + b[x + 1];
                /* SMOOTH: (ring + 5 centre) / 13, rounded; the sum is an exact integer and its thirteenths
                 * never fall near .5, so this order rounds as Pillow's does. */
                float deg = (float)(int)((float)(ring + 5 * m[x]) * (1.0f / 13.0f) + 0.5f);
                q[row + x] = blend1(deg, m[x], f);
            }
        }
    }
}

static PyObject *sharpness(PyObject *self, PyObject *args) {
    Py_buffer src;
    int channels, height, width;
    double factor;
    if (!PyArg_ParseTuple(args, "y*iiid", &src, &channels, &height, &width, &factor)) {
        return NULL;
    }
    size_t plane = (size_t)height * width;
    PyObject *out = NULL;
    if (channels < 1 || height < 1 || width < 1 || src.len != (Py_ssize_t)(plane * channels)) {
        PyErr_SetString(PyExc_ValueError, "sharpness: arguments do not describe a planar image");
        PyBuffer_Release(&src);
        return NULL;
    }
    out = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(plane * channels));
    if (out == NULL) {
        PyBuffer_Release(&src);
        return NULL;
    }
    const unsigned char *in = (const unsigned char *)src.buf;
    unsigned char *dst = (unsigned char *)PyByteArray_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    sharpness_into(in, dst, channels, height, width, (float)factor);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&src);
    return out;
}

static PyObject *shift_lines(PyObject *self, PyObject *args) {
    Py_buffer src, shifts;
    int channels, height, width, axis, bicubic;
    PyObject *fill;
    if (!PyArg_ParseTuple(args, "y*iiiiy*iO", &src, &channels, &height, &width, &axis, &shifts, &bicubic, &fill)) {
        return NULL;
    }
    PyObject *out = NULL;
    unsigned char fills[16];
    int lines = axis == 2 ? height : width, length = axis == 2 ? width : height;
    size_t plane = (size_t)height * width;
    if ((axis != 1 && axis != 2) || channels < 1 || channels > 16 || height < 1 || width < 1 ||
        src.len != (Py_ssize_t)(plane * channels) || shifts.len != (Py_ssize_t)(lines * sizeof(double)) ||
        !PySequence_Check(fill) || PySequence_Size(fill) != channels) {
        PyErr_SetString(PyExc_ValueError, "shift_lines: arguments do not describe a planar image and its lines");
        goto done;
    }
    for (int c = 0; c < channels; c++) {
        PyObject *item = PySequence_GetItem(fill, c);
        long v = item ? PyLong_AsLong(item) : -1;
        Py_XDECREF(item);
        if (PyErr_Occurred()) goto done;
        fills[c] = (unsigned char)(v < 0 ? 0 : (v > 255 ? 255 : v));
    }
    out = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)(plane * channels));
    if (out == NULL) goto done;
    unsigned char *dst = (unsigned char *)PyByteArray_AS_STRING(out);
    const unsigned char *in = (const unsigned char *)src.buf;
    const double *s = (const double *)shifts.buf;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    unsigned char *tmp_in = NULL, *tmp_out = NULL;
    if (axis == 1) {
        tmp_in = (unsigned char *)malloc(plane);
        tmp_out = (unsigned char *)malloc(plane);
        failed = tmp_in == NULL || tmp_out == NULL;
    }
    for (int c = 0; c < channels && !failed; c++) {
        const unsigned char *pin = in + c * plane;
        unsigned char *pout = dst + c * plane;
        if (axis == 2) {
            for (int y = 0; y < lines; y++)
                shift_line(pin + (size_t)y * width, pout + (size_t)y * width, length, s[y], bicubic, fills[c]);
        } else { /* columns: transpose, shift rows, transpose back */
            transpose(pin, tmp_in, height, width);
            for (int x = 0; x < lines; x++)
                shift_line(tmp_in + (size_t)x * height, tmp_out + (size_t)x * height, length, s[x], bicubic,
                           fills[c]);
            transpose(tmp_out, pout, width, height);
        }
    }
    free(tmp_in);
    free(tmp_out);
    Py_END_ALLOW_THREADS
    if (failed) {
        Py_CLEAR(out);
        PyErr_NoMemory();
    }
done:
    PyBuffer_Release(&src);
    PyBuffer_Release(&shifts);
    return out;
}

static PyMethodDef methods[] = {
    {"shift_lines", shift_lines, METH_VARARGS,
     "shift_lines(src, channels, height, width, axis, shifts, bicubic, fill) -> bytearray"},
    {"sharpness", sharpness, METH_VARARGS, "sharpness(src, channels, height, width, factor) -> bytearray"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_augment", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__augment(void) { return PyModule_Create(&module); }
