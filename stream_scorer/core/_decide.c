/* The fraud decisions of a scored batch, built in C: stream_scorer.core.fraud_decisions.fraud_decisions_py is
 * the definition, and a test holds the two equal on every field (the explanation's text included); also the
 * top risk factors of stream_scorer.core.explain.top_factors.
 *
 * Python formats a float through its own dtoa (~0.5-0.8 us each: three reasons and the score per explanation,
 * and round() does the same three times per decision). _pyfloat.h rounds and formats exactly as Python does,
 * without it; non-finite or huge values are formatted by Python itself.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __APPLE__
#include <xlocale.h>
#endif

static locale_t c_locale;

#include "_pyfloat.h"

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
    char digits[400];
    int n = format_fixed(v, precision, digits, sizeof digits);
    if (n < 0) return 1;
    digits[n] = '\0';
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

/* table[j] is (before, code, spec, after) for feature j; values[j] its value; factors the features to describe */
static int put_reasons(Buffer *b, PyObject *values, PyObject *factors, PyObject *table) {
    PyObject *seq = PySequence_Fast(factors, "factors must be a sequence");
    if (seq == NULL) return -1;
    int status = -1;
    for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(seq); k++) {
        Py_ssize_t j = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(seq, k));
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
        if (k && put(b, "; ", 2) < 0) goto done;
        if (put_str(b, PyTuple_GET_ITEM(phrase, 0)) < 0) goto done;
        if (code != SPEC_NONE) {
            PyObject *item = PySequence_GetItem(values, j);
            if (item == NULL) goto done;
            double v = PyFloat_AsDouble(item);
            Py_DECREF(item);
            if (v == -1.0 && PyErr_Occurred()) goto done;
            if (put_value(b, v, code, PyTuple_GET_ITEM(phrase, 2)) < 0) goto done;
            if (put_str(b, PyTuple_GET_ITEM(phrase, 3)) < 0) goto done;
        }
    }
    status = 0;
done:
    Py_DECREF(seq);
    return status;
}

#define PUT_LITERAL(b, text) put((b), (text), (Py_ssize_t)(sizeof(text) - 1))

static PyObject *s_low, *s_medium, *s_high, *s_approve, *s_review, *s_decline, *s_spec_2f;
static PyObject *s_dict, *s_fields_set, *s_extra, *s_private;

/* "{score:.2f}" */
static int put_score(Buffer *b, double score) {
    int status = (isfinite(score) && fabs(score) < 1e15) ? put_fixed(b, score, 2, 0) : 1;
    return status > 0 ? put_python(b, score, s_spec_2f) : status; /* 1: Python formats it */
}

/* stream_scorer.core.explain.fraud_explanation */
static PyObject *explanation(PyObject *risk, double score, PyObject *values, PyObject *factors, PyObject *table) {
    char stack[512] = "";
    Buffer b = {stack, 0, sizeof stack, 0};
    PyObject *result = NULL;
    Py_ssize_t n = PyObject_Length(factors);
    if (n < 0) return NULL;
    int low = risk == s_low;
    const char *title = risk == s_high ? "High" : "Medium";
    if (n == 0) {
        if (low) return PyUnicode_FromString("Transaction appears legitimate with low risk indicators.");
        if (put(&b, title, (Py_ssize_t)strlen(title)) < 0 || PUT_LITERAL(&b, " risk (score ") < 0 ||
            put_score(&b, score) < 0 || PUT_LITERAL(&b, ") without a single dominant factor.") < 0)
            goto done;
    } else if (low) {
        if (PUT_LITERAL(&b, "Transaction appears legitimate with low risk indicators (score ") < 0 ||
            put_score(&b, score) < 0 || PUT_LITERAL(&b, "); strongest signals: ") < 0 ||
            put_reasons(&b, values, factors, table) < 0 || PUT_LITERAL(&b, ".") < 0)
            goto done;
    } else {
        if (put(&b, title, (Py_ssize_t)strlen(title)) < 0 || PUT_LITERAL(&b, " risk (score ") < 0 ||
            put_score(&b, score) < 0 || PUT_LITERAL(&b, "): ") < 0 || put_reasons(&b, values, factors, table) < 0 ||
            PUT_LITERAL(&b, ".") < 0)
            goto done;
    }
    result = PyUnicode_DecodeUTF8(b.data, b.len, NULL);
done:
    if (b.on_heap) PyMem_Free(b.data);
    return result;
}

static PyObject *double_or_none(PyObject *obj, double now) {
    if (obj == Py_None) return Py_NewRef(Py_None);
    double updated = PyFloat_AsDouble(obj);
    if (updated == -1.0 && PyErr_Occurred()) return NULL;
    double age = now - updated;
    return PyFloat_FromDouble(py_round(age > 0.0 ? age : 0.0, 3)); /* max(0.0, age) */
}

static PyObject *names_of(PyObject *factors, PyObject *names) {
    PyObject *seq = PySequence_Fast(factors, "factors must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(n);
    for (Py_ssize_t k = 0; out != NULL && k < n; k++) {
        Py_ssize_t j = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(seq, k));
        if (j == -1 && PyErr_Occurred()) Py_CLEAR(out);
        else if (j < 0 || j >= PyTuple_GET_SIZE(names)) {
            PyErr_Format(PyExc_IndexError, "factor %zd has no name", j);
            Py_CLEAR(out);
        } else
            PyList_SET_ITEM(out, k, Py_NewRef(PyTuple_GET_ITEM(names, j)));
    }
    Py_DECREF(seq);
    return out;
}

/* schemas.decisions.trusted: the instance state set directly, as object.__setattr__ does */
static PyObject *trusted(PyTypeObject *cls, PyObject *fields, PyObject *values, PyObject *no_args) {
    PyObject *obj = cls->tp_new(cls, no_args, NULL);
    if (obj == NULL) return NULL;
    PyObject *fields_set = PySet_New(fields); /* a copy of a frozenset of the fields: no hashing */
    if (fields_set == NULL || PyObject_GenericSetAttr(obj, s_dict, values) < 0 ||
        PyObject_GenericSetAttr(obj, s_fields_set, fields_set) < 0 ||
        PyObject_GenericSetAttr(obj, s_extra, Py_None) < 0 || PyObject_GenericSetAttr(obj, s_private, Py_None) < 0) {
        Py_XDECREF(fields_set);
        Py_DECREF(obj);
        return NULL;
    }
    Py_DECREF(fields_set);
    return obj;
}

enum { F_SCORE, F_RISK, F_CONFIDENCE, F_ACTION, F_EXPLANATION, F_FACTORS, F_USED, F_LATENCY, F_VERSION, F_FRESHNESS,
       F_TX, F_ID, F_EVENT_TS, F_SCORED_AT, F_MISSING, F_DEGRADED, N_FIELDS };

#define N_ROW_LISTS 9

/* fraud_decisions(cls, fields, scores, served, factors, rows, names, table, event_ids, times, updated_at,
 *                 missing, decision_ids, now, scored_at, latency_ms, degraded, utc) -> (decisions, actions) */
static PyObject *fraud_decisions(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 18) {
        PyErr_SetString(PyExc_TypeError, "fraud_decisions takes 18 arguments");
        return NULL;
    }
    PyObject *cls = args[0], *fields = args[1], *names = args[6], *table = args[7];
    if (!PyType_Check(cls) || !PyTuple_Check(fields) || PyTuple_GET_SIZE(fields) != N_FIELDS ||
        !PyTuple_Check(names) || !PyTuple_Check(table) || PyTuple_GET_SIZE(table) != PyTuple_GET_SIZE(names)) {
        PyErr_SetString(PyExc_TypeError, "fraud_decisions: a class, 16 field names, and names and phrases alike");
        return NULL;
    }
    double now = PyFloat_AsDouble(args[13]);
    if (now == -1.0 && PyErr_Occurred()) return NULL;
    PyObject *scored_at = args[14], *latency = args[15], *degraded = args[16], *utc = args[17];

    /* scores, served, factors, rows, event_ids, times, updated_at, missing, decision_ids */
    PyObject *lists[N_ROW_LISTS] = {NULL};
    const int list_args[N_ROW_LISTS] = {2, 3, 4, 5, 8, 9, 10, 11, 12};
    PyObject *out = NULL, *actions = NULL, *result = NULL, *no_args = NULL, *used = NULL, *field_set = NULL;
    PyObject *values = NULL;
    locale_t previous = uselocale(c_locale);
    Py_ssize_t n = -1;
    for (int k = 0; k < N_ROW_LISTS; k++) {
        lists[k] = PySequence_Fast(args[list_args[k]], "fraud_decisions: rows must be sequences");
        if (lists[k] == NULL) goto done;
        Py_ssize_t size = PySequence_Fast_GET_SIZE(lists[k]);
        if (n >= 0 && size != n) {
            PyErr_SetString(PyExc_ValueError, "fraud_decisions: every per-row sequence must have one item per row");
            goto done;
        }
        n = size;
    }
    out = PyList_New(n);
    actions = PyList_New(n);
    no_args = PyTuple_New(0);
    used = PyLong_FromSsize_t(PyTuple_GET_SIZE(names));
    field_set = PyFrozenSet_New(fields);
    if (out == NULL || actions == NULL || no_args == NULL || used == NULL || field_set == NULL) goto done;
    for (Py_ssize_t row = 0; row < n; row++) {
        PyObject *raw = PySequence_Fast_GET_ITEM(lists[0], row), *served = PySequence_Fast_GET_ITEM(lists[1], row);
        PyObject *top = PySequence_Fast_GET_ITEM(lists[2], row), *features = PySequence_Fast_GET_ITEM(lists[3], row);
        double raw_score = PyFloat_AsDouble(raw);
        if (raw_score == -1.0 && PyErr_Occurred()) goto done;
        if (!PyTuple_Check(served) || PyTuple_GET_SIZE(served) != 3) {
            PyErr_SetString(PyExc_TypeError, "fraud_decisions: served rows are (version, decline, review)");
            goto done;
        }
        double decline = PyFloat_AsDouble(PyTuple_GET_ITEM(served, 1));
        if (decline == -1.0 && PyErr_Occurred()) goto done;
        double review = PyFloat_AsDouble(PyTuple_GET_ITEM(served, 2));
        if (review == -1.0 && PyErr_Occurred()) goto done;
        double score = py_round(raw_score, 6);
        PyObject *risk, *action;
        if (score >= decline) {
            risk = s_high;
            action = s_decline;
        } else if (score >= review) {
            risk = s_medium;
            action = s_review;
        } else {
            risk = s_low;
            action = s_approve;
        }
        double other = 1.0 - score;
        values = _PyDict_NewPresized(N_FIELDS); /* no resize while the fields go in */
        if (values == NULL) goto done;
        PyObject *item[N_FIELDS] = {NULL};
        PyObject *stamp_args = NULL;
        int failed = 1;
        /* each field checked as it is built: no Python API runs with an exception set */
#define FIELD(f, expr)                                                                                             \
    do {                                                                                                            \
        if ((item[f] = (expr)) == NULL) goto fields_done;                                                           \
    } while (0)
        FIELD(F_SCORE, PyFloat_FromDouble(score));
        FIELD(F_RISK, Py_NewRef(risk));
        FIELD(F_CONFIDENCE, PyFloat_FromDouble(py_round(other > score ? other : score, 6))); /* max(p, 1 - p) */
        FIELD(F_ACTION, Py_NewRef(action));
        FIELD(F_EXPLANATION, explanation(risk, score, features, top, table));
        FIELD(F_FACTORS, names_of(top, names));
        FIELD(F_USED, Py_NewRef(used));
        FIELD(F_LATENCY, Py_NewRef(latency));
        FIELD(F_VERSION, Py_NewRef(PyTuple_GET_ITEM(served, 0)));
        FIELD(F_FRESHNESS, double_or_none(PySequence_Fast_GET_ITEM(lists[6], row), now));
        FIELD(F_TX, Py_NewRef(PySequence_Fast_GET_ITEM(lists[4], row)));
        FIELD(F_ID, Py_NewRef(PySequence_Fast_GET_ITEM(lists[8], row)));
        stamp_args = PyTuple_Pack(2, PySequence_Fast_GET_ITEM(lists[5], row), utc);
        if (stamp_args == NULL) goto fields_done;
        FIELD(F_EVENT_TS, PyDateTimeAPI->DateTime_FromTimestamp((PyObject *)PyDateTimeAPI->DateTimeType,
                                                                stamp_args, NULL));
        FIELD(F_SCORED_AT, Py_NewRef(scored_at));
        FIELD(F_MISSING, Py_NewRef(PySequence_Fast_GET_ITEM(lists[7], row)));
        FIELD(F_DEGRADED, Py_NewRef(degraded));
#undef FIELD
        failed = 0;
        for (int f = 0; f < N_FIELDS && !failed; f++) {
            if (PyDict_SetItem(values, PyTuple_GET_ITEM(fields, f), item[f]) < 0) failed = 1;
        }
    fields_done:
        Py_XDECREF(stamp_args);
        for (int f = 0; f < N_FIELDS; f++) Py_XDECREF(item[f]);
        if (failed) goto done;
        PyObject *decision = trusted((PyTypeObject *)cls, field_set, values, no_args);
        Py_CLEAR(values);
        if (decision == NULL) goto done;
        PyList_SET_ITEM(out, row, decision);
        PyList_SET_ITEM(actions, row, Py_NewRef(action));
    }
    result = PyTuple_Pack(2, out, actions);
done:
    uselocale(previous);
    for (int k = 0; k < N_ROW_LISTS; k++) Py_XDECREF(lists[k]);
    Py_XDECREF(values);
    Py_XDECREF(out);
    Py_XDECREF(actions);
    Py_XDECREF(no_args);
    Py_XDECREF(used);
    Py_XDECREF(field_set);
    return result;
}

/* explanation(risk_level, score, values, factors, table) -> str, for the test of the sentences alone */
static PyObject *explanation_py(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyUnicode_Check(args[0]) || !PyTuple_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "explanation(risk_level, score, values, factors, table)");
        return NULL;
    }
    PyObject *risk = PyUnicode_CompareWithASCIIString(args[0], "low") == 0 ? s_low
                   : PyUnicode_CompareWithASCIIString(args[0], "high") == 0 ? s_high : s_medium;
    double score = PyFloat_AsDouble(args[1]);
    if (score == -1.0 && PyErr_Occurred()) return NULL;
    locale_t previous = uselocale(c_locale);
    PyObject *text = explanation(risk, score, args[2], args[3], args[4]);
    uselocale(previous);
    return text;
}

/* top_factors(contributions, limit, minimum) -> per row of a float64 matrix (any strides), the indices of the (at
 * most ``limit``) largest values at or above ``minimum``, largest first, ties by index: explain.top_factors */
static PyObject *top_factors(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "top_factors(contributions, limit, minimum)");
        return NULL;
    }
    Py_ssize_t limit = PyLong_AsSsize_t(args[1]);
    if (limit == -1 && PyErr_Occurred()) return NULL;
    double minimum = PyFloat_AsDouble(args[2]);
    if (minimum == -1.0 && PyErr_Occurred()) return NULL;
    if (limit < 0 || limit > 64) {
        PyErr_SetString(PyExc_ValueError, "top_factors: limit must be 0..64");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_STRIDES | PyBUF_FORMAT) < 0) return NULL;
    PyObject *out = NULL;
    if (view.ndim != 2 || view.itemsize != 8 || view.format == NULL || strcmp(view.format, "d") != 0) {
        PyErr_SetString(PyExc_TypeError, "top_factors: a 2-D float64 matrix");
        goto done;
    }
    Py_ssize_t rows = view.shape[0], cols = view.shape[1];
    Py_ssize_t row_step = view.strides[0], col_step = view.strides[1];
    const char *data = (const char *)view.buf;
#define AT(j) (*(const double *)(line + (j) * col_step))
    out = PyList_New(rows);
    if (out == NULL) goto done;
    for (Py_ssize_t r = 0; r < rows; r++) {
        const char *line = data + r * row_step;
        Py_ssize_t top[64];
        Py_ssize_t kept = 0;
        for (Py_ssize_t j = 0; j < cols; j++) {
            double v = AT(j);
            if (!(v >= minimum)) continue; /* below the minimum, or NaN: never a factor */
            if (kept == limit && (limit == 0 || !(v > AT(top[kept - 1])))) continue; /* ties: the earlier */
            Py_ssize_t k = kept < limit ? kept++ : kept - 1;
            while (k > 0 && v > AT(top[k - 1])) {
                top[k] = top[k - 1];
                k--;
            }
            top[k] = j;
        }
        PyObject *factors = PyList_New(kept);
        if (factors == NULL) {
            Py_CLEAR(out);
            goto done;
        }
        for (Py_ssize_t k = 0; k < kept; k++) {
            PyObject *index = PyLong_FromSsize_t(top[k]);
            if (index == NULL) {
                Py_DECREF(factors);
                Py_CLEAR(out);
                goto done;
            }
            PyList_SET_ITEM(factors, k, index);
        }
        PyList_SET_ITEM(out, r, factors);
    }
#undef AT
done:
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef methods[] = {
    {"top_factors", (PyCFunction)(void (*)(void))top_factors, METH_FASTCALL,
     "The C implementation of stream_scorer.core.explain.top_factors."},
    {"fraud_decisions", (PyCFunction)(void (*)(void))fraud_decisions, METH_FASTCALL,
     "The C implementation of stream_scorer.core.fraud_decisions.fraud_decisions_py."},
    {"explanation", (PyCFunction)(void (*)(void))explanation_py, METH_FASTCALL,
     "The C implementation of stream_scorer.core.explain.fraud_explanation (risk levels low, medium, high)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_decide", .m_size = -1, .m_methods = methods,
};

static int intern(PyObject **target, const char *text) {
    *target = PyUnicode_InternFromString(text);
    return *target == NULL ? -1 : 0;
}

PyMODINIT_FUNC PyInit__decide(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL) return NULL;
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
    if (c_locale == (locale_t)0) return PyErr_NoMemory();
    if (intern(&s_low, "low") < 0 || intern(&s_medium, "medium") < 0 || intern(&s_high, "high") < 0 ||
        intern(&s_approve, "approve") < 0 || intern(&s_review, "review") < 0 || intern(&s_decline, "decline") < 0 ||
        intern(&s_spec_2f, ".2f") < 0 || intern(&s_dict, "__dict__") < 0 ||
        intern(&s_fields_set, "__pydantic_fields_set__") < 0 || intern(&s_extra, "__pydantic_extra__") < 0 ||
        intern(&s_private, "__pydantic_private__") < 0)
        return NULL;
    return PyModule_Create(&module);
}
