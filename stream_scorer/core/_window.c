/* The card-window aggregation of stream_scorer.core.window, in C.
 *
 * The Python function ``aggregate_card_window_py`` in window.py is the definition; this is the same computation
 * over the same input (the window as stored: a flat list ``[member, time, member, time, ...]`` with members
 * ``transaction_id|amount|country|merchant_id``), reading the members' bytes in place instead of building an
 * object per member. It must give bit-identical results: entries are kept and ordered the same way (time, then
 * transaction id, then position), sums are added in that order in doubles, and numbers are parsed with correct
 * rounding, as float() parses them. tests/stream_scorer/core/test_window.py compares the two.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>
#include <locale.h>
#ifdef __APPLE__
#include <xlocale.h>
#endif

static locale_t c_locale;

typedef struct {
    const char *ptr;
    Py_ssize_t len;
} Slice;

typedef struct {
    double t;
    double amount;
    Slice tid;
    Slice country;
    Slice merchant;
    Py_ssize_t pos;
} Entry;

static int slice_cmp(const Slice *a, const Slice *b) {
    /* Python's str order: UTF-8 bytes compare like code points; a prefix sorts first. */
    Py_ssize_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->ptr, b->ptr, (size_t)n) : 0;
    if (c) return c;
    return (a->len > b->len) - (a->len < b->len);
}

static int slice_qsort_cmp(const void *a, const void *b) { return slice_cmp((const Slice *)a, (const Slice *)b); }

static int entry_cmp(const void *pa, const void *pb) {
    const Entry *a = (const Entry *)pa, *b = (const Entry *)pb;
    if (a->t < b->t) return -1;
    if (a->t > b->t) return 1;
    int c = slice_cmp(&a->tid, &b->tid);
    if (c) return c;
    return (a->pos > b->pos) - (a->pos < b->pos); /* a stable sort, as Python's */
}

static int fast_double(const char *start, Py_ssize_t len, double *out) {
    /* Decimal text (digits, sign, point, exponent, inf / nan) parsed by strtod in the C locale: correctly rounded,
     * as CPython's float() parses it, so both give the same double; ~3x cheaper than PyOS_string_to_double.
     * Anything else (hex, underscores, spaces, long text) returns -1 and goes to float() itself. */
    char buf[64];
    if (len <= 0 || len >= (Py_ssize_t)sizeof(buf)) return -1;
    for (Py_ssize_t i = 0; i < len; i++) {
        char c = start[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == '+' || c == '-' || strchr("eEiInNfFaAtTyY", c) != NULL) ||
            c == '\0')
            return -1;
    }
    memcpy(buf, start, (size_t)len);
    buf[len] = '\0';
    char *end = NULL;
    double value = strtod_l(buf, &end, c_locale);
    if (end != buf + len) return -1;
    *out = value;
    return 0;
}

static int python_double(PyObject *text, double *out) {
    /* float(text), with its own errors */
    PyObject *number = PyFloat_FromString(text);
    if (number == NULL) return -1;
    *out = PyFloat_AS_DOUBLE(number);
    Py_DECREF(number);
    return 0;
}

static int parse_double(const char *start, Py_ssize_t len, double *out) {
    if (fast_double(start, len, out) == 0) return 0;
    PyObject *text = PyUnicode_DecodeUTF8(start, len, NULL);
    if (text == NULL) return -1;
    int status = python_double(text, out);
    Py_DECREF(text);
    return status;
}

static int time_of(PyObject *obj, double *out) {
    /* Only types whose conversion runs no Python code: the list being read cannot change meanwhile. A float
     * subclass (numpy.float64, from training's frames) is read from its float value directly. */
    if (PyFloat_Check(obj)) {
        *out = PyFloat_AS_DOUBLE(obj);
        return 0;
    }
    if (PyUnicode_Check(obj)) {
        Py_ssize_t len;
        const char *s = PyUnicode_AsUTF8AndSize(obj, &len);
        if (s == NULL) return -1;
        if (fast_double(s, len, out) == 0) return 0;
        return python_double(obj, out);
    }
    if (PyLong_CheckExact(obj)) {
        double value = PyLong_AsDouble(obj);
        if (value == -1.0 && PyErr_Occurred()) return -1;
        *out = value;
        return 0;
    }
    PyErr_Format(PyExc_TypeError, "window time must be a float, int or str, not %.100s", Py_TYPE(obj)->tp_name);
    return -1;
}

static int parse_member(PyObject *obj, Entry *e) {
    if (!PyUnicode_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "window member must be str, not %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(obj, &len);
    if (s == NULL) return -1;
    const char *end = s + len;
    const char *bar[3];
    const char *p = s;
    for (int k = 0; k < 3; k++) {
        const char *found = memchr(p, '|', (size_t)(end - p));
        if (found == NULL) {
            PyErr_Format(PyExc_ValueError, "window member has fewer than 4 fields: %R", obj);
            return -1;
        }
        bar[k] = found;
        p = found + 1;
    }
    e->tid.ptr = s;
    e->tid.len = bar[0] - s;
    if (parse_double(bar[0] + 1, bar[1] - bar[0] - 1, &e->amount) < 0) return -1;
    e->country.ptr = bar[1] + 1;
    e->country.len = bar[2] - bar[1] - 1;
    e->merchant.ptr = bar[2] + 1;
    e->merchant.len = end - bar[2] - 1;
    return 0;
}

static Py_ssize_t count_distinct(Slice *items, Py_ssize_t n) {
    if (n < 2) return n;
    qsort(items, (size_t)n, sizeof(Slice), slice_qsort_cmp);
    Py_ssize_t distinct = 1;
    for (Py_ssize_t i = 1; i < n; i++) {
        if (slice_cmp(&items[i - 1], &items[i])) distinct++;
    }
    return distinct;
}

#define STACK_ENTRIES 64

static PyObject *aggregate_card_window(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "aggregate_card_window(history, ts, country, window_sec, day_sec, hour_sec, small_amount)");
        return NULL;
    }
    PyObject *history = args[0];
    double ts = PyFloat_AsDouble(args[1]);
    if (ts == -1.0 && PyErr_Occurred()) return NULL;
    Slice country = {NULL, 0};
    if (args[2] != Py_None) {
        if (!PyUnicode_Check(args[2])) {
            PyErr_SetString(PyExc_TypeError, "country must be str or None");
            return NULL;
        }
        country.ptr = PyUnicode_AsUTF8AndSize(args[2], &country.len);
        if (country.ptr == NULL) return NULL;
    }
    double constants[4];
    for (int k = 0; k < 4; k++) {
        constants[k] = PyFloat_AsDouble(args[3 + k]);
        if (constants[k] == -1.0 && PyErr_Occurred()) return NULL;
    }
    double window_sec = constants[0], day_sec = constants[1], hour_sec = constants[2], small_amount = constants[3];

    PyObject *seq = PySequence_Fast(history, "history must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t size = PySequence_Fast_GET_SIZE(seq);
    if (size % 2) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "history must hold (member, time) pairs");
        return NULL;
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t pairs = size / 2;

    Entry stack_entries[STACK_ENTRIES];
    Slice stack_slices[3 * STACK_ENTRIES];
    Entry *entries = stack_entries;
    Slice *slices = stack_slices;
    PyObject *result = NULL;
    if (pairs > STACK_ENTRIES) {
        entries = PyMem_Malloc((size_t)pairs * sizeof(Entry));
        slices = PyMem_Malloc((size_t)pairs * 3 * sizeof(Slice));
        if (entries == NULL || slices == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }

    double low = ts - window_sec;
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < pairs; i++) {
        double t;
        if (time_of(items[2 * i + 1], &t) < 0) goto done;
        if (!(low <= t && t < ts)) continue;
        Entry *e = &entries[n];
        e->t = t;
        e->pos = i;
        if (parse_member(items[2 * i], e) < 0) goto done;
        n++;
    }
    if (n > 1) qsort(entries, (size_t)n, sizeof(Entry), entry_cmp);

    long n1h = 0, n24h = 0, small1h = 0;
    double s1h = 0.0, s24h = 0.0, s7d = 0.0;
    Slice *merchants24 = slices, *countries24 = slices + pairs, *countries7d = slices + 2 * pairs;
    Py_ssize_t m24 = 0, c24 = 0, c7 = 0;
    int seen = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Entry *e = &entries[i];
        double amount = e->amount;
        s7d += amount;
        if (e->country.len) {
            countries7d[c7++] = e->country;
            if (country.len && !slice_cmp(&country, &e->country)) seen = 1;
        }
        if (ts - e->t <= day_sec) {
            n24h++;
            s24h += amount;
            merchants24[m24++] = e->merchant;
            if (e->country.len) countries24[c24++] = e->country;
            if (ts - e->t <= hour_sec) {
                n1h++;
                s1h += amount;
                if (amount < small_amount) small1h++;
            }
        }
    }
    /* the usual country: the most frequent, ties to the alphabetically first */
    PyObject *usual = NULL;
    if (c7) {
        qsort(countries7d, (size_t)c7, sizeof(Slice), slice_qsort_cmp);
        Py_ssize_t best = 0, best_count = 0, run = 0;
        for (Py_ssize_t i = 0; i < c7; i++) {
            run = (i && !slice_cmp(&countries7d[i - 1], &countries7d[i])) ? run + 1 : 1;
            if (run > best_count) {
                best_count = run;
                best = i;
            }
        }
        usual = PyUnicode_DecodeUTF8(countries7d[best].ptr, countries7d[best].len, NULL);
        if (usual == NULL) goto done;
    } else {
        usual = Py_NewRef(Py_None);
    }
    PyObject *last = n ? PyFloat_FromDouble(entries[n - 1].t) : Py_NewRef(Py_None);
    if (last == NULL) {
        Py_DECREF(usual);
        goto done;
    }
    result = Py_BuildValue("(lllldddNnnON)", n1h, n24h, (long)n, small1h, s1h, s24h, s7d, last,
                           count_distinct(merchants24, m24), count_distinct(countries24, c24),
                           seen ? Py_True : Py_False, usual);

done:
    if (entries != stack_entries) PyMem_Free(entries);
    if (slices != stack_slices) PyMem_Free(slices);
    Py_DECREF(seq);
    return result;
}

static PyMethodDef methods[] = {
    {"aggregate_card_window", (PyCFunction)(void (*)(void))aggregate_card_window, METH_FASTCALL,
     "The C implementation of stream_scorer.core.window.aggregate_card_window."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_window", .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__window(void) {
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (c_locale == (locale_t)0) return PyErr_NoMemory();
    return PyModule_Create(&module);
}
