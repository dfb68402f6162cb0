/* Row images of a binlog rows event, decoded in C: the fast path's native decoder.
 *
 * syncd/source/fastpath.py describes each column of a table as a small tuple (see
 * `native_plan` there) and builds one `Decoder` per table definition. `Decoder.rows` returns
 * the event's rows exactly as the fast path's generated Python functions do (which equal the
 * library's), or None when anything is out of the ordinary: a value that does not fit its type,
 * a short buffer, text that does not decode. The caller then decodes that event in Python, so
 * every unusual case keeps the Python path's behaviour, errors included.
 *
 * TIME is decoded as syncd's exact TIME reader (syncd/source/values.py) decodes it; fastpath.py
 * plans TIME columns here only while that reader is the library's.
 *
 * Text is decoded only in the charsets whose decoding here is exactly the source server's
 * (syncd/source/charsets.py): with a Python codec that agrees with the server (utf8mb4,
 * utf16, gbk, ...), the same refusing characters past U+FFFF (utf8mb3, ucs2), or a table of
 * 256 characters (every single-byte charset, latin1 included). Bytes that do not decode
 * exactly hand the event back; tables with columns in other charsets are not decoded here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <string.h>

enum kind {
    K_INT = 1, K_INT24, K_YEAR, K_FLOAT, K_DOUBLE, K_ENUM, K_STR, K_DECIMAL, K_DATETIME2, K_DATE,
    K_TIMESTAMP2, K_TIME2, K_BIT, K_SET
};

/* How a K_STR column's text decodes (fastpath.py's _CODEC, _CODEC_BMP, _TABLE). */
enum text { T_CODEC = 0, T_CODEC_BMP, T_TABLE };

typedef struct {
    int kind;
    int a;           /* K_INT, K_ENUM, K_SET: width; K_STR: length bytes; K_DECIMAL: precision;
                        K_DATETIME2, K_TIMESTAMP2, K_TIME2: fsp; K_BIT: bits */
    int b;           /* K_INT, K_INT24: signed; K_DECIMAL: scale; K_STR: how text decodes (enum text) */
    int width;       /* bytes of a fixed-width value (0: variable) */
    PyObject *name;  /* column name */
    PyObject *obj;   /* K_ENUM: labels; K_SET: members; K_STR: codec or table (NULL: binary) */
    PyObject *reason; /* none_sources reason of a None that is not NULL (K_DATE, K_DATETIME2, K_SET) */
    const char *encoding;
} Column;

typedef struct {
    PyObject_HEAD
    Py_ssize_t count;
    Column *columns;
    PyObject *null_reason;
    const char *errors;
    PyObject *errors_obj;
} Decoder;

static PyObject *Decimal;  /* decimal.Decimal */
static PyObject *k_values, *k_sources, *k_before, *k_before_sources, *k_after, *k_after_sources;

static const int DECIMAL_BYTES[10] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 4};
static const long long POW10[7] = {1, 10, 100, 1000, 10000, 100000, 1000000};

static int decimal_width(int precision, int scale) {
    int whole = precision - scale;
    return whole / 9 * 4 + DECIMAL_BYTES[whole % 9] + scale / 9 * 4 + DECIMAL_BYTES[scale % 9];
}

static long long read_be_signed(const unsigned char *p, int n) {
    long long v = (p[0] & 0x80) ? -1 : 0;
    for (int i = 0; i < n; i++)
        v = (long long)(((unsigned long long)v << 8) | p[i]);
    return v;
}

static unsigned long long read_le(const unsigned char *p, int n) {
    unsigned long long v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* DECIMAL: groups of 9 digits big-endian, the sign in the first bit, negatives inverted; the
 * text built group by group as the library does, then Decimal(text). */
static PyObject *read_decimal(const unsigned char *p, const Column *c) {
    unsigned char raw[64];
    char text[160];
    int size = c->width, whole = c->a - c->b, scale = c->b;
    if (size > (int)sizeof(raw))
        return NULL;
    memcpy(raw, p, size);
    int negative = !(raw[0] & 0x80);
    raw[0] ^= 0x80;
    long long mask = negative ? -1 : 0;
    int at = 0, out = 0;
    if (negative)
        text[out++] = '-';
    int lead = DECIMAL_BYTES[whole % 9];
    if (lead) {
        out += snprintf(text + out, sizeof(text) - out, "%lld", read_be_signed(raw, lead) ^ mask);
        at += lead;
    }
    for (int i = 0; i < whole / 9; i++, at += 4)
        out += snprintf(text + out, sizeof(text) - out, "%09lld", read_be_signed(raw + at, 4) ^ mask);
    text[out++] = '.';
    for (int i = 0; i < scale / 9; i++, at += 4)
        out += snprintf(text + out, sizeof(text) - out, "%09lld", read_be_signed(raw + at, 4) ^ mask);
    int rest = scale % 9;
    if (DECIMAL_BYTES[rest])
        out += snprintf(text + out, sizeof(text) - out, "%0*lld", rest,
                        read_be_signed(raw + at, DECIMAL_BYTES[rest]) ^ mask);
    if (out >= (int)sizeof(text))
        return NULL;
    return PyObject_CallFunction(Decimal, "s#", text, (Py_ssize_t)out);
}

/* DATETIME(fsp): 5 bytes big-endian, then the fraction; a date the type cannot hold is None.
 * *odd is set for a fraction outside 0..999999 (the Python path handles that case). */
static PyObject *read_datetime2(const unsigned char *p, const Column *c, int *odd) {
    unsigned long long packed = 0;
    for (int i = 0; i < 5; i++)
        packed = (packed << 8) | p[i];
    int fsp = c->a, size = (fsp + 1) / 2;
    long long micro = 0;
    if (size) {
        long long stored = read_be_signed(p + 5, size);
        micro = (fsp % 2 ? stored / 10 : stored) * POW10[6 - fsp];
    }
    if (micro < 0 || micro >= 1000000) {
        *odd = 1;
        return NULL;
    }
    long year_month = (packed >> 22) & 0x1FFFF;
    PyObject *value = PyDateTime_FromDateAndTime(
        (int)(year_month / 13), (int)(year_month % 13), (int)((packed >> 17) & 0x1F),
        (int)((packed >> 12) & 0x1F), (int)((packed >> 6) & 0x3F), (int)(packed & 0x3F), (int)micro);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return value;
}

/* DATE: 3 bytes little-endian, day | month << 5 | year << 9; a zero part reads None. */
static PyObject *read_date(const unsigned char *p) {
    unsigned long packed = (unsigned long)read_le(p, 3);
    int year = (int)(packed >> 9), month = (int)((packed >> 5) & 0x0F), day = (int)(packed & 0x1F);
    if (packed == 0 || year == 0 || month == 0 || day == 0)
        Py_RETURN_NONE;
    return PyDate_FromDate(year, month, day);
}

/* The date of a day count since 1970-01-01 (proleptic Gregorian; days may be negative). */
static void civil_from_days(long long days, int *year, int *month, int *day) {
    days += 719468;
    long long era = (days >= 0 ? days : days - 146096) / 146097;
    long long doe = days - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = (int)(yoe + era * 400 + (*month <= 2));
}

/* Microseconds of an fsp fraction, read big-endian signed (odd fsp: truncated to fsp digits). */
static long long read_fraction(const unsigned char *p, int fsp) {
    int size = (fsp + 1) / 2;
    if (!size)
        return 0;
    long long stored = read_be_signed(p, size);
    return (fsp % 2 ? stored / 10 : stored) * POW10[6 - fsp];
}

/* TIMESTAMP(fsp): 4 bytes big-endian signed seconds since the epoch, naive UTC (as
 * utcfromtimestamp); a fraction below zero is left out, one past a second goes to Python. */
static PyObject *read_timestamp2(const unsigned char *p, const Column *c, int *odd) {
    long long seconds = read_be_signed(p, 4);
    long long micro = read_fraction(p + 4, c->a);
    if (micro >= 1000000) {
        *odd = 1;
        return NULL;
    }
    long long days = (seconds >= 0 ? seconds : seconds - 86399) / 86400;
    long long rest = seconds - days * 86400;
    int year, month, day;
    civil_from_days(days, &year, &month, &day);
    return PyDateTime_FromDateAndTime(year, month, day, (int)(rest / 3600), (int)(rest / 60 % 60),
                                      (int)(rest % 60), micro > 0 ? (int)micro : 0);
}

/* TIME(fsp): the integer part and the fraction as one big-endian number with an offset, a
 * negative value borrowing from the integer part (values.py's time2_from_binary). */
static PyObject *read_time2(const unsigned char *p, const Column *c) {
    int size = (c->a + 1) / 2;
    long long whole = ((long long)p[0] << 16 | p[1] << 8 | p[2]) - 0x800000;
    long long packed;
    if (size == 0) {
        packed = whole * (1LL << 24);
    } else if (size == 3) {
        unsigned long long all = 0;
        for (int i = 0; i < 6; i++)
            all = (all << 8) | p[i];
        packed = (long long)all - 0x800000000000LL;
    } else {
        long long fraction = 0;
        for (int i = 0; i < size; i++)
            fraction = (fraction << 8) | p[3 + i];
        if (whole < 0 && fraction) {
            whole += 1;
            fraction -= 1LL << (8 * size);
        }
        packed = whole * (1LL << 24) + fraction * (size == 1 ? 10000 : 100);
    }
    int negative = packed < 0;
    if (negative)
        packed = -packed;
    long long hms = packed >> 24, micros = packed & 0xFFFFFF;
    long long total = ((((hms >> 12) & 0x3FF) * 60 + ((hms >> 6) & 0x3F)) * 60 + (hms & 0x3F)) * 1000000LL
        + micros;
    if (negative)
        total = -total;
    long long day = 86400000000LL;
    long long days = (total >= 0 ? total : total - day + 1) / day;
    long long rest = total - days * day;
    return PyDelta_FromDSU((int)days, (int)(rest / 1000000), (int)(rest % 1000000));
}

/* BIT(bits): big-endian; the text of its `bits` low bits, as '0' and '1'. */
static PyObject *read_bit(const unsigned char *p, const Column *c) {
    char text[64];
    unsigned long long raw = 0;
    for (int i = 0; i < c->width; i++)
        raw = (raw << 8) | p[i];
    for (int i = 0; i < c->a; i++)
        text[c->a - 1 - i] = (char)('0' + (raw >> i & 1));
    return PyUnicode_FromStringAndSize(text, c->a);
}

/* SET: a little-endian bit mask over the members; no member set reads None. */
static PyObject *read_set(const unsigned char *p, const Column *c) {
    unsigned long long mask = read_le(p, c->width);
    Py_ssize_t count = PyList_GET_SIZE(c->obj);
    if (count > 64)
        count = 64;
    PyObject *chosen = NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (!(mask >> i & 1))
            continue;
        if (chosen == NULL && (chosen = PySet_New(NULL)) == NULL)
            return NULL;
        if (PySet_Add(chosen, PyList_GET_ITEM(c->obj, i)) < 0) {
            Py_DECREF(chosen);
            return NULL;
        }
    }
    if (chosen == NULL)
        Py_RETURN_NONE;
    return chosen;
}

static PyObject *read_int(const unsigned char *p, const Column *c) {
    unsigned long long raw = read_le(p, c->width);
    if (!c->b)
        return PyLong_FromUnsignedLongLong(raw);
    int bits = 8 * c->width;
    long long value = bits == 64 ? (long long)raw
                                 : (long long)(raw ^ (1ULL << (bits - 1))) - (1LL << (bits - 1));
    return PyLong_FromLongLong(value);
}

/* One value at *pos (moved past it); NULL with *odd set: decode the event in Python instead. */
/* A value C could not build (an error, or a reader that said so): the row goes to the Python
   path, which decodes it or says why not. */
static PyObject *odd_if_null(PyObject *value, int *odd) {
    if (value == NULL) {
        PyErr_Clear();
        *odd = 1;
    }
    return value;
}

static PyObject *read_value(Decoder *self, const Column *c, const unsigned char *data, Py_ssize_t end,
                            Py_ssize_t *pos, int *odd) {
    const unsigned char *p = data + *pos;
    if (c->kind == K_STR) {
        if (*pos + c->a > end) { *odd = 1; return NULL; }
        Py_ssize_t n = (Py_ssize_t)read_le(p, c->a);
        if (*pos + c->a + n > end) { *odd = 1; return NULL; }
        *pos += c->a + n;
        if (c->obj == NULL) {  /* binary */
            if (n == 0)
                return PyUnicode_FromStringAndSize("", 0);
            return PyBytes_FromStringAndSize((const char *)p + c->a, n);
        }
        PyObject *text = c->b == T_TABLE
            ? PyUnicode_DecodeCharmap((const char *)p + c->a, n, c->obj, self->errors)
            : PyUnicode_Decode((const char *)p + c->a, n, c->encoding, self->errors);
        if (text != NULL && c->b == T_CODEC_BMP && PyUnicode_MAX_CHAR_VALUE(text) > 0xFFFF)
            Py_CLEAR(text);
        if (text == NULL) {
            PyErr_Clear();
            *odd = 1;
        }
        return text;
    }
    if (*pos + c->width > end) { *odd = 1; return NULL; }
    *pos += c->width;
    switch (c->kind) {
    case K_INT:
        return read_int(p, c);
    case K_INT24: {
        Column shape = *c;
        shape.width = 3;
        return read_int(p, &shape);
    }
    case K_YEAR:
        return PyLong_FromLong((long)p[0] + 1900);
    case K_FLOAT:
        return PyFloat_FromDouble(PyFloat_Unpack4((const char *)p, 1));
    case K_DOUBLE:
        return PyFloat_FromDouble(PyFloat_Unpack8((const char *)p, 1));
    case K_ENUM: {
        Py_ssize_t index = (Py_ssize_t)read_le(p, c->width);
        if (index >= PyList_GET_SIZE(c->obj)) { *odd = 1; return NULL; }
        PyObject *label = PyList_GET_ITEM(c->obj, index);
        Py_INCREF(label);
        return label;
    }
    case K_DECIMAL:
        return odd_if_null(read_decimal(p, c), odd);
    case K_DATETIME2:
        return read_datetime2(p, c, odd);
    case K_DATE:
        return odd_if_null(read_date(p), odd);
    case K_TIMESTAMP2:
        return odd_if_null(read_timestamp2(p, c, odd), odd);
    case K_TIME2:
        return odd_if_null(read_time2(p, c), odd);
    case K_BIT:
        return read_bit(p, c);
    case K_SET:
        return read_set(p, c);
    }
    *odd = 1;
    return NULL;
}

/* One image (null bitmap, then values): (values, none_sources) into *values / *sources. */
static int read_image(Decoder *self, const unsigned char *data, Py_ssize_t end, Py_ssize_t *pos,
                      PyObject **values, PyObject **sources, int *odd) {
    Py_ssize_t bitmap = (self->count + 7) / 8;
    if (*pos + bitmap > end) { *odd = 1; return -1; }
    const unsigned char *nulls = data + *pos;
    *pos += bitmap;
    *values = PyDict_New();
    *sources = PyDict_New();
    if (*values == NULL || *sources == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < self->count; i++) {
        const Column *c = &self->columns[i];
        PyObject *value;
        if (nulls[i >> 3] >> (i & 7) & 1) {
            if (PyDict_SetItem(*sources, c->name, self->null_reason) < 0)
                goto fail;
            value = Py_None;
            Py_INCREF(value);
        } else {
            value = read_value(self, c, data, end, pos, odd);
            if (value == NULL)
                goto fail;
            if (value == Py_None && c->reason != NULL
                && PyDict_SetItem(*sources, c->name, c->reason) < 0) {
                Py_DECREF(value);
                goto fail;
            }
        }
        int failed = PyDict_SetItem(*values, c->name, value);
        Py_DECREF(value);
        if (failed < 0)
            goto fail;
    }
    return 0;
fail:
    Py_CLEAR(*values);
    Py_CLEAR(*sources);
    return -1;
}

static PyObject *pair(PyObject *k1, PyObject *v1, PyObject *k2, PyObject *v2) {
    PyObject *row = PyDict_New();
    if (row != NULL && (PyDict_SetItem(row, k1, v1) < 0 || PyDict_SetItem(row, k2, v2) < 0))
        Py_CLEAR(row);
    return row;
}

static PyObject *Decoder_rows(Decoder *self, PyObject *args) {
    Py_buffer buffer;
    Py_ssize_t pos, end;
    int update;
    if (!PyArg_ParseTuple(args, "y*nnp", &buffer, &pos, &end, &update))
        return NULL;
    const unsigned char *data = buffer.buf;
    if (end > buffer.len || pos < 0)
        end = -1;
    PyObject *rows = PyList_New(0);
    int odd = 0;
    while (rows != NULL && end >= 0 && pos < end) {
        PyObject *values, *sources, *row = NULL;
        if (read_image(self, data, end, &pos, &values, &sources, &odd) < 0)
            break;
        if (!update) {
            row = pair(k_values, values, k_sources, sources);
        } else {
            PyObject *after, *after_sources;
            if (read_image(self, data, end, &pos, &after, &after_sources, &odd) == 0) {
                row = pair(k_before, values, k_before_sources, sources);
                if (row != NULL && (PyDict_SetItem(row, k_after, after) < 0
                                    || PyDict_SetItem(row, k_after_sources, after_sources) < 0))
                    Py_CLEAR(row);
                Py_DECREF(after);
                Py_DECREF(after_sources);
            }
        }
        Py_DECREF(values);
        Py_DECREF(sources);
        if (row == NULL || PyList_Append(rows, row) < 0) {
            Py_XDECREF(row);
            break;
        }
        Py_DECREF(row);
    }
    PyBuffer_Release(&buffer);
    if (rows == NULL)
        return NULL;
    if (odd || end < 0 || pos != end || PyErr_Occurred()) {
        Py_DECREF(rows);
        if (PyErr_Occurred() && !odd)
            return NULL;  /* out of memory and the like */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return rows;
}

static int column_from(Column *c, PyObject *spec) {
    PyObject *name, *obj, *reason;
    if (!PyArg_ParseTuple(spec, "UiiiOO", &name, &c->kind, &c->a, &c->b, &obj, &reason))
        return -1;
    c->name = Py_NewRef(name);
    c->obj = obj == Py_None ? NULL : Py_NewRef(obj);
    c->reason = reason == Py_None ? NULL : Py_NewRef(reason);
    c->encoding = NULL;
    switch (c->kind) {
    case K_INT: case K_ENUM: c->width = c->a; break;
    case K_INT24: c->width = 3; break;
    case K_YEAR: c->width = 1; break;
    case K_FLOAT: c->width = 4; break;
    case K_DOUBLE: c->width = 8; break;
    case K_DECIMAL: c->width = decimal_width(c->a, c->b); break;
    case K_DATETIME2: c->width = 5 + (c->a + 1) / 2; break;
    case K_DATE: c->width = 3; break;
    case K_TIMESTAMP2: c->width = 4 + (c->a + 1) / 2; break;
    case K_TIME2: c->width = 3 + (c->a + 1) / 2; break;
    case K_BIT: c->width = (c->a + 7) / 8; break;
    case K_SET: c->width = c->a; break;
    case K_STR:
        c->width = 0;
        if (c->obj != NULL && c->b != T_TABLE && (c->encoding = PyUnicode_AsUTF8(c->obj)) == NULL)
            return -1;
        break;
    default:
        PyErr_Format(PyExc_ValueError, "unknown column kind %d", c->kind);
        return -1;
    }
    int bad = (c->kind == K_INT && c->a != 1 && c->a != 2 && c->a != 4 && c->a != 8)
        || (c->kind == K_ENUM && ((c->a != 1 && c->a != 2) || c->obj == NULL || !PyList_Check(c->obj)))
        || (c->kind == K_STR && (c->a < 1 || c->a > 4 || c->b < T_CODEC || c->b > T_TABLE))
        || (c->kind == K_STR && c->b == T_TABLE && (c->obj == NULL || !PyUnicode_Check(c->obj)
                                                    || PyUnicode_GET_LENGTH(c->obj) != 256))
        || (c->kind == K_DECIMAL && (c->b < 0 || c->a < c->b || c->a > 65 || c->b > 30))
        || ((c->kind == K_DATETIME2 || c->kind == K_TIMESTAMP2 || c->kind == K_TIME2) && (c->a < 0 || c->a > 6))
        || (c->kind == K_BIT && (c->a < 1 || c->a > 64))
        || (c->kind == K_SET && (c->a < 1 || c->a > 8 || c->obj == NULL || !PyList_Check(c->obj)));
    if (bad) {
        PyErr_Format(PyExc_ValueError, "column %R: unsupported parameters", c->name);
        return -1;
    }
    return 0;
}

static void Decoder_dealloc(Decoder *self) {
    for (Py_ssize_t i = 0; self->columns != NULL && i < self->count; i++) {
        Py_XDECREF(self->columns[i].name);
        Py_XDECREF(self->columns[i].obj);
        Py_XDECREF(self->columns[i].reason);
    }
    PyMem_Free(self->columns);
    Py_XDECREF(self->null_reason);
    Py_XDECREF(self->errors_obj);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int Decoder_init(Decoder *self, PyObject *args, PyObject *kwargs) {
    PyObject *columns, *null_reason, *errors;
    static char *names[] = {"columns", "null_reason", "errors", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!UU", names, &PyTuple_Type, &columns, &null_reason,
                                     &errors))
        return -1;
    if (self->columns != NULL) {
        PyErr_SetString(PyExc_TypeError, "Decoder is already initialised");
        return -1;
    }
    Py_ssize_t count = PyTuple_GET_SIZE(columns);
    self->columns = PyMem_Calloc(count ? count : 1, sizeof(Column));
    if (self->columns == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->count = count;
    self->null_reason = Py_NewRef(null_reason);
    self->errors_obj = Py_NewRef(errors);
    if ((self->errors = PyUnicode_AsUTF8(errors)) == NULL)
        return -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *spec = PyTuple_GET_ITEM(columns, i);
        if (!PyTuple_Check(spec)) {
            PyErr_SetString(PyExc_TypeError, "each column is a tuple");
            return -1;
        }
        if (column_from(&self->columns[i], spec) < 0)
            return -1;
    }
    return 0;
}

static PyMethodDef Decoder_methods[] = {
    {"rows", (PyCFunction)Decoder_rows, METH_VARARGS,
     "rows(data, pos, end, update) -> list of row dicts, or None: decode this event in Python"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DecoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "syncd.source._rowimage.Decoder",
    .tp_basicsize = sizeof(Decoder),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Decodes the row images of one table definition (see syncd/source/fastpath.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Decoder_init,
    .tp_dealloc = (destructor)Decoder_dealloc,
    .tp_methods = Decoder_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_rowimage",
    .m_doc = "Native row-image decoding for syncd's fast path.",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__rowimage(void) {
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL || PyType_Ready(&DecoderType) < 0)
        return NULL;
    PyObject *decimal = PyImport_ImportModule("decimal");
    if (decimal == NULL)
        return NULL;
    Decimal = PyObject_GetAttrString(decimal, "Decimal");
    Py_DECREF(decimal);
    k_values = PyUnicode_InternFromString("values");
    k_sources = PyUnicode_InternFromString("none_sources");
    k_before = PyUnicode_InternFromString("before_values");
    k_before_sources = PyUnicode_InternFromString("before_none_sources");
    k_after = PyUnicode_InternFromString("after_values");
    k_after_sources = PyUnicode_InternFromString("after_none_sources");
    if (Decimal == NULL || !k_values || !k_sources || !k_before || !k_before_sources || !k_after
        || !k_after_sources)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddObjectRef(m, "Decoder", (PyObject *)&DecoderType) < 0)
        Py_CLEAR(m);
    return m;
}
