/* COPY text of a datetime, in C: exactly `str(value).encode()`, which is what psycopg's own
 * text dumper sends (see syncd/sink/postgres.py, `TimestampText`).
 *
 * psycopg's dumper first picks the naive or the time-zone variant for each value, then calls
 * `str()`: about 1.8 µs per value, a quarter of formatting a typical row. Here the digits are
 * written directly; the offset comes from `tzinfo.utcoffset(value)` as in `str()`. Anything
 * out of the ordinary (a subclass, an offset that is not a timedelta or is out of range) goes
 * through `str()` itself, so its result and its errors stay exactly those of `str()`.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>

static char *digits(char *out, long value, int width) {
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + value % 10);
        value /= 10;
    }
    return out + width;
}

static PyObject *through_str(PyObject *value) {
    PyObject *text = PyObject_Str(value);
    if (text == NULL)
        return NULL;
    PyObject *encoded = PyUnicode_AsUTF8String(text);
    Py_DECREF(text);
    return encoded;
}

/* Appends `+HH:MM[:SS[.ffffff]]` as `str()` does; 0 when the offset is unusual (caller: str()). */
static int append_offset(char **out, PyObject *offset) {
    if (!PyDelta_CheckExact(offset))
        return 0;
    long long total = (long long)PyDateTime_DELTA_GET_DAYS(offset) * 86400000000LL
                      + (long long)PyDateTime_DELTA_GET_SECONDS(offset) * 1000000LL
                      + PyDateTime_DELTA_GET_MICROSECONDS(offset);
    char sign = '+';
    if (total < 0) {
        sign = '-';
        total = -total;
    }
    if (total >= 86400000000LL)  /* str() raises: the offset must be less than a day */
        return 0;
    long microseconds = (long)(total % 1000000);
    long seconds = (long)(total / 1000000);
    char *p = *out;
    *p++ = sign;
    p = digits(p, seconds / 3600, 2);
    *p++ = ':';
    p = digits(p, seconds % 3600 / 60, 2);
    if (seconds % 60 || microseconds) {
        *p++ = ':';
        p = digits(p, seconds % 60, 2);
        if (microseconds) {
            *p++ = '.';
            p = digits(p, microseconds, 6);
        }
    }
    *out = p;
    return 1;
}

static PyObject *timestamp_text(PyObject *module, PyObject *value) {
    if (!PyDateTime_CheckExact(value))
        return through_str(value);
    char buffer[64];
    char *p = buffer;
    p = digits(p, PyDateTime_GET_YEAR(value), 4);
    *p++ = '-';
    p = digits(p, PyDateTime_GET_MONTH(value), 2);
    *p++ = '-';
    p = digits(p, PyDateTime_GET_DAY(value), 2);
    *p++ = ' ';
    p = digits(p, PyDateTime_DATE_GET_HOUR(value), 2);
    *p++ = ':';
    p = digits(p, PyDateTime_DATE_GET_MINUTE(value), 2);
    *p++ = ':';
    p = digits(p, PyDateTime_DATE_GET_SECOND(value), 2);
    long microsecond = PyDateTime_DATE_GET_MICROSECOND(value);
    if (microsecond) {
        *p++ = '.';
        p = digits(p, microsecond, 6);
    }
    PyObject *tzinfo = PyDateTime_DATE_GET_TZINFO(value);
    if (tzinfo == PyDateTime_TimeZone_UTC) {
        memcpy(p, "+00:00", 6);
        p += 6;
    } else if (tzinfo != Py_None) {
        PyObject *offset = PyObject_CallMethod(tzinfo, "utcoffset", "O", value);
        if (offset == NULL)
            return NULL;  /* the error str() would raise */
        int done = offset == Py_None || append_offset(&p, offset);
        Py_DECREF(offset);
        if (!done)
            return through_str(value);
    }
    return PyBytes_FromStringAndSize(buffer, p - buffer);
}

static PyMethodDef methods[] = {
    {"timestamp_text", timestamp_text, METH_O, "str(value).encode() for a datetime, faster."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_pgtext",
    .m_doc = "PostgreSQL COPY text of values, in C, for syncd's sink.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__pgtext(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    return PyModule_Create(&module);
}
