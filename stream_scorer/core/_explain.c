/* The reasons of a fraud explanation ("amount of 1,234.50; 3 transactions on this card in the last hour"),
 * formatted in C: stream_scorer.core.explain.describe is the definition, and a test holds the two equal.
 *
 * Python formats a float through its own dtoa (~0.5-0.8 us each, three per decision); snprintf is correctly
 * rounded too (the exact binary value, ties to even, as Python), so the digits are the same. Values that are not
 * finite or are too large for the buffer are formatted by Python itself.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

enum { SPEC_NONE = 0, SPEC_F0 = 1, SPEC_F1 = 2, SPEC_GROUPED_F2 = 3, SPEC_GROUPED_F0 = 4, SPEC_PERCENT1 = 5,
       SPEC_PYTHON = 6 };

typedef struct {
    char *data;
    Py_ssize_t len, cap;
    int on_heap; /* the first buffer is on the caller's stack: growing it copies instead of reallocating */
} Buffer;

static int put(Buffer *b, const char *s, Py_ssize_t n) {
    if (b->len + n > b->cap) {
        Py_ssize_t cap = (b->len + n) * 2;
        char *data = b->on_heap ? PyMem_Realloc(b->data, (size_t)cap) : PyMem_Malloc((size_t)cap);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        if (!b->on_heap) memcpy(data, b->data, (size_t)b->len);
        b->data = data;
        b->on_heap = 1;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

static int put_str(Buffer *b, PyObject *text) {
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    if (s == NULL) return -1;
    return put(b, s, n);
}

/* "%.*f", with a comma between each group of three integer digits when grouped (Python's "," option) */
static int put_fixed(Buffer *b, double v, int precision, int grouped) {
    char digits[64];
    int n = snprintf(digits, sizeof digits, "%.*f", precision, v);
    if (n < 0 || n >= (int)sizeof digits) return 1;
    if (!grouped) return put(b, digits, n);
    const char *p = digits;
    if (*p == '-') {
        if (put(b, p, 1) < 0) return -1;
        p++;
    }
    const char *dot = strchr(p, '.');
    Py_ssize_t integer = dot ? dot - p : (Py_ssize_t)strlen(p);
    for (Py_ssize_t i = 0; i < integer; i++) {
        if (i && (integer - i) % 3 == 0 && put(b, ",", 1) < 0) return -1;
        if (put(b, p + i, 1) < 0) return -1;
    }
    return put(b, p + integer, (Py_ssize_t)strlen(p + integer));
}

static int put_python(Buffer *b, double v, PyObject *spec) {
    PyObject *number = PyFloat_FromDouble(v);
    if (number == NULL) return -1;
    PyObject *text = PyObject_Format(number, spec);
    Py_DECREF(number);
    if (text == NULL) return -1;
    int status = put_str(b, text);
    Py_DECREF(text);
    return status;
}

static int put_value(Buffer *b, double v, long code, PyObject *spec) {
    int status = 1;
    if (isfinite(v) && fabs(v) < 1e15) {
        switch (code) {
        case SPEC_F0: status = put_fixed(b, v, 0, 0); break;
        case SPEC_F1: status = put_fixed(b, v, 1, 0); break;
        case SPEC_GROUPED_F2: status = put_fixed(b, v, 2, 1); break;
        case SPEC_GROUPED_F0: status = put_fixed(b, v, 0, 1); break;
        case SPEC_PERCENT1:
            status = put_fixed(b, v * 100.0, 1, 0);
            if (status == 0) status = put(b, "%", 1);
            break;
        default: break;
        }
    }
    return status > 0 ? put_python(b, v, spec) : status;
}

/* reasons(values, factors, table) -> str
 * table[j] is (before, code, spec, after) for feature j; values[j] its value; factors the features to describe. */
static PyObject *reasons(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyList_Check(args[1]) || !PyTuple_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "reasons(values, factors: list, table: tuple)");
        return NULL;
    }
    PyObject *values = args[0], *factors = args[1], *table = args[2];
    char stack[512] = "";
    Buffer b = {stack, 0, sizeof stack, 0};
    PyObject *result = NULL;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(factors); k++) {
        Py_ssize_t j = PyLong_AsSsize_t(PyList_GET_ITEM(factors, k));
        if (j == -1 && PyErr_Occurred()) goto done;
        if (j < 0 || j >= PyTuple_GET_SIZE(table)) {
            PyErr_Format(PyExc_IndexError, "factor %zd has no phrase", j);
            goto done;
        }
        PyObject *phrase = PyTuple_GET_ITEM(table, j);
        if (!PyTuple_Check(phrase) || PyTuple_GET_SIZE(phrase) != 4) {
            PyErr_SetString(PyExc_TypeError, "a phrase is (before, code, spec, after)");
            goto done;
        }
        long code = PyLong_AsLong(PyTuple_GET_ITEM(phrase, 1));
        if (code == -1 && PyErr_Occurred()) goto done;
        if (k && put(&b, "; ", 2) < 0) goto done;
        if (put_str(&b, PyTuple_GET_ITEM(phrase, 0)) < 0) goto done;
        if (code != SPEC_NONE) {
            PyObject *item = PySequence_GetItem(values, j);
            if (item == NULL) goto done;
            double v = PyFloat_AsDouble(item);
            Py_DECREF(item);
            if (v == -1.0 && PyErr_Occurred()) goto done;
            if (put_value(&b, v, code, PyTuple_GET_ITEM(phrase, 2)) < 0) goto done;
            if (put_str(&b, PyTuple_GET_ITEM(phrase, 3)) < 0) goto done;
        }
    }
    result = PyUnicode_DecodeUTF8(b.data, b.len, NULL);
done:
    if (b.on_heap) PyMem_Free(b.data);
    return result;
}

static PyMethodDef methods[] = {
    {"reasons", (PyCFunction)(void (*)(void))reasons, METH_FASTCALL,
     "The C implementation of the reasons part of stream_scorer.core.explain.fraud_explanation."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_explain", .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__explain(void) {
    return PyModule_Create(&module);
}
