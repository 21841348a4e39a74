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
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __APPLE__
#include <xlocale.h>
#endif

static locale_t c_locale;

#include "_pyfloat.h"

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

typedef struct {
    long n1h, n24h, n7d, small1h;
    double s1h, s24h, s7d;
    double last; /* the latest time, when n7d > 0 */
    Py_ssize_t merchants24, countries24;
    int seen;
    Slice usual; /* ptr NULL: none; points into the history's members */
} Aggregates;

typedef struct {
    Entry stack_entries[STACK_ENTRIES];
    Slice stack_slices[3 * STACK_ENTRIES];
    Entry *entries;
    Slice *slices;
} Scratch;

static void scratch_free(Scratch *s) {
    if (s->entries != NULL && s->entries != s->stack_entries) PyMem_Free(s->entries);
    if (s->slices != NULL && s->slices != s->stack_slices) PyMem_Free(s->slices);
    s->entries = NULL;
    s->slices = NULL;
}

/* The aggregation of ``history`` (a list or tuple, kept alive by the caller while ``out->usual`` is read). */
static int aggregate(PyObject *seq, double ts, Slice country, double window_sec, double day_sec, double hour_sec,
                     double small_amount, Scratch *scratch, Aggregates *out) {
    Py_ssize_t size = PySequence_Fast_GET_SIZE(seq);
    if (size % 2) {
        PyErr_SetString(PyExc_ValueError, "history must hold (member, time) pairs");
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t pairs = size / 2;
    scratch_free(scratch);
    scratch->entries = scratch->stack_entries;
    scratch->slices = scratch->stack_slices;
    if (pairs > STACK_ENTRIES) {
        scratch->entries = PyMem_Malloc((size_t)pairs * sizeof(Entry));
        scratch->slices = PyMem_Malloc((size_t)pairs * 3 * sizeof(Slice));
        if (scratch->entries == NULL || scratch->slices == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    Entry *entries = scratch->entries;
    double low = ts - window_sec;
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i < pairs; i++) {
        double t;
        if (time_of(items[2 * i + 1], &t) < 0) return -1;
        if (!(low <= t && t < ts)) continue;
        Entry *e = &entries[n];
        e->t = t;
        e->pos = i;
        if (parse_member(items[2 * i], e) < 0) return -1;
        n++;
    }
    if (n > 1) qsort(entries, (size_t)n, sizeof(Entry), entry_cmp);

    memset(out, 0, sizeof *out);
    Slice *merchants24 = scratch->slices, *countries24 = scratch->slices + pairs;
    Slice *countries7d = scratch->slices + 2 * pairs;
    Py_ssize_t m24 = 0, c24 = 0, c7 = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Entry *e = &entries[i];
        double amount = e->amount;
        out->s7d += amount;
        if (e->country.len) {
            countries7d[c7++] = e->country;
            if (country.len && !slice_cmp(&country, &e->country)) out->seen = 1;
        }
        if (ts - e->t <= day_sec) {
            out->n24h++;
            out->s24h += amount;
            merchants24[m24++] = e->merchant;
            if (e->country.len) countries24[c24++] = e->country;
            if (ts - e->t <= hour_sec) {
                out->n1h++;
                out->s1h += amount;
                if (amount < small_amount) out->small1h++;
            }
        }
    }
    out->n7d = (long)n;
    if (n) out->last = entries[n - 1].t;
    out->merchants24 = count_distinct(merchants24, m24);
    out->countries24 = count_distinct(countries24, c24);
    /* the usual country: the most frequent, ties to the alphabetically first */
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
        out->usual = countries7d[best];
    }
    return 0;
}

static int country_of(PyObject *obj, Slice *out) {
    out->ptr = NULL;
    out->len = 0;
    if (obj == Py_None) return 0;
    if (!PyUnicode_Check(obj)) {
        PyErr_SetString(PyExc_TypeError, "country must be str or None");
        return -1;
    }
    out->ptr = PyUnicode_AsUTF8AndSize(obj, &out->len);
    return out->ptr == NULL ? -1 : 0;
}

static int doubles(PyObject *const *args, int n, double *out) {
    for (int k = 0; k < n; k++) {
        out[k] = PyFloat_AsDouble(args[k]);
        if (out[k] == -1.0 && PyErr_Occurred()) return -1;
    }
    return 0;
}

static PyObject *aggregate_card_window(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError,
                        "aggregate_card_window(history, ts, country, window_sec, day_sec, hour_sec, small_amount)");
        return NULL;
    }
    double ts = PyFloat_AsDouble(args[1]);
    if (ts == -1.0 && PyErr_Occurred()) return NULL;
    Slice country;
    double c[4];
    if (country_of(args[2], &country) < 0 || doubles(args + 3, 4, c) < 0) return NULL;
    PyObject *seq = PySequence_Fast(args[0], "history must be a sequence");
    if (seq == NULL) return NULL;
    Scratch scratch = {.entries = NULL, .slices = NULL};
    Aggregates a;
    PyObject *result = NULL;
    if (aggregate(seq, ts, country, c[0], c[1], c[2], c[3], &scratch, &a) == 0) {
        PyObject *usual = a.usual.ptr ? PyUnicode_DecodeUTF8(a.usual.ptr, a.usual.len, NULL) : Py_NewRef(Py_None);
        PyObject *last = a.n7d ? PyFloat_FromDouble(a.last) : Py_NewRef(Py_None);
        if (usual != NULL && last != NULL)
            result = Py_BuildValue("(lllldddOnnOO)", a.n1h, a.n24h, a.n7d, a.small1h, a.s1h, a.s24h, a.s7d, last,
                                   a.merchants24, a.countries24, a.seen ? Py_True : Py_False, usual);
        Py_XDECREF(usual);
        Py_XDECREF(last);
    }
    scratch_free(&scratch);
    Py_DECREF(seq);
    return result;
}

/* read_card_log(log, low, high): stream_scorer.core.window.read_card_log_py, the definition. The log is
 * ``{updated_at}`` then ``\n{member}|{time}`` per transaction; the members whose time is in [low, high) come back
 * as the window's flat list (member str, time float), in the log's order, with the update time (None for no log). */
static PyObject *read_card_log(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "read_card_log(log, low, high)");
        return NULL;
    }
    double range[2]; /* low, high */
    if (doubles(args + 1, 2, range) < 0) return NULL;
    double low = range[0], high = range[1];
    if (args[0] == Py_None) return Py_BuildValue("([]O)", Py_None);
    if (!PyUnicode_Check(args[0])) {
        PyErr_Format(PyExc_TypeError, "card log must be str or None, not %.100s", Py_TYPE(args[0])->tp_name);
        return NULL;
    }
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(args[0], &len);
    if (s == NULL) return NULL;
    const char *end = s + len;
    const char *line = memchr(s, '\n', (size_t)len);
    if (line == NULL) line = end;
    double updated;
    if (parse_double(s, line - s, &updated) < 0) return NULL;
    PyObject *window = PyList_New(0);
    if (window == NULL) return NULL;
    while (line < end) {
        const char *start = line + 1;
        const char *stop = memchr(start, '\n', (size_t)(end - start));
        if (stop == NULL) stop = end;
        const char *bar = stop;
        while (bar > start && bar[-1] != '|') bar--;
        double t;
        if (bar == start) {
            PyErr_SetString(PyExc_ValueError, "card log entry without a time");
            goto fail;
        }
        if (parse_double(bar, stop - bar, &t) < 0) goto fail;
        if (low <= t && t < high) {
            PyObject *member = PyUnicode_DecodeUTF8(start, bar - 1 - start, NULL);
            if (member == NULL) goto fail;
            PyObject *at = PyFloat_FromDouble(t);
            int status = at == NULL ? -1 : PyList_Append(window, member);
            if (status == 0) status = PyList_Append(window, at);
            Py_DECREF(member);
            Py_XDECREF(at);
            if (status < 0) goto fail;
        }
        line = stop;
    }
    PyObject *result = Py_BuildValue("(Nd)", window, updated);
    return result;
fail:
    Py_DECREF(window);
    return NULL;
}

/* Python's float ``%`` and ``//`` (CPython's float_rem and _float_div_mod); round() is in _pyfloat.h */
static double py_mod(double x, double y) {
    double mod = fmod(x, y);
    if (mod) {
        if ((y < 0) != (mod < 0)) mod += y;
    } else {
        mod = copysign(0.0, y);
    }
    return mod;
}

static double py_floordiv(double x, double y) {
    double mod = fmod(x, y);
    double div = (x - mod) / y;
    if (mod && ((y < 0) != (mod < 0))) div -= 1.0;
    if (div) {
        double floordiv = floor(div);
        if (div - floordiv > 0.5) floordiv += 1.0;
        return floordiv;
    }
    return copysign(0.0, x / y);
}

enum { ROW_SIZE = 22 };

/* fraud_feature_rows(histories, times, amounts, countries, risks, distances, window_sec, day_sec, hour_sec,
 *                    small_amount) -> list of rows: stream_scorer.core.features.fraud_features for each row, with
 * risks[i] = (merchant's transactions, merchant's rate, MCC's rate) and distances[(country, usual)] in km */
static PyObject *fraud_feature_rows(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 10 || !PyDict_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError, "fraud_feature_rows(histories, times, amounts, countries, risks, "
                                         "distances: dict, window_sec, day_sec, hour_sec, small_amount)");
        return NULL;
    }
    double c[4];
    if (doubles(args + 6, 4, c) < 0) return NULL;
    double window_sec = c[0], day_sec = c[1], hour_sec = c[2], small_amount = c[3];
    PyObject *distances = args[5];
    PyObject *lists[5] = {NULL};
    PyObject *rows = NULL, *result = NULL;
    Scratch scratch = {.entries = NULL, .slices = NULL};
    locale_t previous = uselocale(c_locale);
    Py_ssize_t n = -1;
    for (int k = 0; k < 5; k++) {
        lists[k] = PySequence_Fast(args[k], "fraud_feature_rows: per-row arguments must be sequences");
        if (lists[k] == NULL) goto done;
        if (n >= 0 && PySequence_Fast_GET_SIZE(lists[k]) != n) {
            PyErr_SetString(PyExc_ValueError, "fraud_feature_rows: one item per row in every sequence");
            goto done;
        }
        n = PySequence_Fast_GET_SIZE(lists[k]);
    }
    rows = PyList_New(n);
    if (rows == NULL) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *country_obj = PySequence_Fast_GET_ITEM(lists[3], i);
        PyObject *risk = PySequence_Fast_GET_ITEM(lists[4], i);
        double ts = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(lists[1], i));
        if (ts == -1.0 && PyErr_Occurred()) goto done;
        double amount = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(lists[2], i));
        if (amount == -1.0 && PyErr_Occurred()) goto done;
        Slice country;
        if (country_of(country_obj, &country) < 0) goto done;
        if (!PyTuple_Check(risk) || PyTuple_GET_SIZE(risk) != 3) {
            PyErr_SetString(PyExc_TypeError, "fraud_feature_rows: risks are (merchant tx, merchant rate, mcc rate)");
            goto done;
        }
        double risks[3];
        if (doubles(&PyTuple_GET_ITEM(risk, 0), 3, risks) < 0) goto done;
        PyObject *seq = PySequence_Fast(PySequence_Fast_GET_ITEM(lists[0], i), "history must be a sequence");
        if (seq == NULL) goto done;
        Aggregates a;
        if (aggregate(seq, ts, country, window_sec, day_sec, hour_sec, small_amount, &scratch, &a) < 0) {
            Py_DECREF(seq);
            goto done;
        }
        double hour = py_mod(ts, day_sec) / hour_sec;
        double day = py_floordiv(ts, day_sec);
        double mean7d = a.n7d ? a.s7d / (double)a.n7d : 0.0;
        double since = window_sec;
        if (a.n7d) {
            double gap = ts - a.last;
            since = window_sec < gap ? window_sec : gap; /* min(gap, window): the first when equal */
        }
        int foreign = 0;
        double distance = 0.0;
        if (country.len && a.usual.ptr) {
            foreign = slice_cmp(&country, &a.usual) != 0;
            PyObject *usual = PyUnicode_DecodeUTF8(a.usual.ptr, a.usual.len, NULL);
            PyObject *key = usual == NULL ? NULL : PyTuple_Pack(2, country_obj, usual);
            Py_XDECREF(usual);
            if (key == NULL) {
                Py_DECREF(seq);
                goto done;
            }
            PyObject *km = PyDict_GetItemWithError(distances, key);
            Py_DECREF(key);
            if (km == NULL && PyErr_Occurred()) {
                Py_DECREF(seq);
                goto done;
            }
            if (km != NULL) {
                distance = PyFloat_AsDouble(km);
                if (distance == -1.0 && PyErr_Occurred()) {
                    Py_DECREF(seq);
                    goto done;
                }
            }
        }
        Py_DECREF(seq);
        if (!(fabs(day) < 9e18)) { /* int(ts // DAY) of Python is unbounded; here it must fit a long long */
            PyErr_SetString(PyExc_OverflowError, "fraud_feature_rows: event time out of range");
            goto done;
        }
        /* (day + 3) % 7 >= 5 on Python ints: 1970-01-01 was a Thursday */
        long long weekday = ((long long)day + 3) % 7;
        if (weekday < 0) weekday += 7;
        double row[ROW_SIZE] = {
            amount, py_round(hour, 6), hour < 6 ? 1.0 : 0.0, weekday >= 5 ? 1.0 : 0.0,
            (double)a.n1h, (double)a.n24h, (double)a.n7d, a.s1h, a.s24h, a.s7d, mean7d,
            mean7d > 0 ? amount / mean7d : 1.0, (double)a.small1h, since, (double)a.merchants24,
            (double)a.countries24, (country.len && a.n7d && !a.seen) ? 1.0 : 0.0, foreign ? 1.0 : 0.0, distance,
            risks[0], risks[1], risks[2],
        };
        PyObject *values = PyList_New(ROW_SIZE);
        if (values == NULL) goto done;
        for (int k = 0; k < ROW_SIZE; k++) {
            PyObject *v = PyFloat_FromDouble(row[k]);
            if (v == NULL) {
                Py_DECREF(values);
                goto done;
            }
            PyList_SET_ITEM(values, k, v);
        }
        PyList_SET_ITEM(rows, i, values);
    }
    result = Py_NewRef(rows);
done:
    uselocale(previous);
    scratch_free(&scratch);
    for (int k = 0; k < 5; k++) Py_XDECREF(lists[k]);
    Py_XDECREF(rows);
    return result;
}

static PyMethodDef methods[] = {
    {"aggregate_card_window", (PyCFunction)(void (*)(void))aggregate_card_window, METH_FASTCALL,
     "The C implementation of stream_scorer.core.window.aggregate_card_window."},
    {"fraud_feature_rows", (PyCFunction)(void (*)(void))fraud_feature_rows, METH_FASTCALL,
     "The C implementation of stream_scorer.core.features.fraud_feature_rows."},
    {"read_card_log", (PyCFunction)(void (*)(void))read_card_log, METH_FASTCALL,
     "The C implementation of stream_scorer.core.window.read_card_log."},
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
