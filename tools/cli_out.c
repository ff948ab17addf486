/* Rendering of `curve` results: human tables or JSON (docs/cli.md "Output"). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "curve/errors.h"
#include "tools/cli.h"

#define CLI_CELL_MAX 256 /* bytes of one table cell (longer values are cut) */
#define CLI_COLS_MAX 16  /* columns of one table */

void cli_bytes(uint64_t n, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    unsigned u = 0;
    uint64_t whole = n;
    while (whole >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        whole /= 1024;
        u++;
    }
    if (u == 0) {
        snprintf(buf, len, "%" PRIu64 " B", n);
        return;
    }
    uint64_t unit = (uint64_t)1 << (10 * u);
    if (n % unit == 0 || whole >= 10) {
        /* round to nearest */
        snprintf(buf, len, "%" PRIu64 " %s", (n + unit / 2) / unit, units[u]);
        return;
    }
    uint64_t tenths = (n % unit) * 10 / unit;
    snprintf(buf, len, "%" PRIu64 ".%" PRIu64 " %s", whole, tenths, units[u]);
}

static void scalar(const json_t *v, char *buf, size_t len)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        snprintf(buf, len, "%s", json_string_value(v));
        break;
    case JSON_INTEGER:
        snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        snprintf(buf, len, "%g", json_real_value(v));
        break;
    case JSON_TRUE:
        snprintf(buf, len, "yes");
        break;
    case JSON_FALSE:
        snprintf(buf, len, "no");
        break;
    case JSON_NULL:
        snprintf(buf, len, "-");
        break;
    default: {
        char *s = json_dumps(v, JSON_COMPACT);
        snprintf(buf, len, "%s", s ? s : "?");
        free(s);
    }
    }
}

void cli_cell(const json_t *v, cli_col_kind kind, char *buf, size_t len)
{
    if (len == 0)
        return;
    if (v == NULL) {
        snprintf(buf, len, "-");
        return;
    }
    if (kind == CLI_COL_BYTES && json_is_integer(v) && json_integer_value(v) >= 0) {
        cli_bytes((uint64_t)json_integer_value(v), buf, len);
        return;
    }
    if (kind == CLI_COL_TIME_NS && json_is_integer(v) && json_integer_value(v) >= 0) {
        time_t t = (time_t)(json_integer_value(v) / 1000000000);
        struct tm tm;
        if (gmtime_r(&t, &tm) != NULL && strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) > 0)
            return;
    }
    if (kind == CLI_COL_LIST && json_is_array(v)) {
        size_t used = 0, i;
        json_t *e;
        buf[0] = '\0';
        json_array_foreach(v, i, e)
        {
            char one[64];
            scalar(e, one, sizeof(one));
            int n = snprintf(buf + used, len - used, "%s%s", i ? "," : "", one);
            if (n < 0 || (size_t)n >= len - used)
                break;
            used += (size_t)n;
        }
        if (json_array_size(v) == 0)
            snprintf(buf, len, "-");
        return;
    }
    scalar(v, buf, len);
}

static void dump_json(FILE *f, const json_t *v)
{
    json_dumpf(v, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', f);
}

void cli_render_table(FILE *f, cli_format fmt, const json_t *rows, const struct cli_col *cols,
                      size_t ncols)
{
    if (fmt == CLI_FMT_JSON) {
        dump_json(f, rows);
        return;
    }
    if (ncols > CLI_COLS_MAX)
        ncols = CLI_COLS_MAX;
    size_t width[CLI_COLS_MAX];
    size_t nrows = json_array_size(rows);
    char cell[CLI_CELL_MAX];
    for (size_t c = 0; c < ncols; c++)
        width[c] = strlen(cols[c].header);
    for (size_t r = 0; r < nrows; r++) {
        const json_t *row = json_array_get(rows, r);
        for (size_t c = 0; c < ncols; c++) {
            cli_cell(json_object_get(row, cols[c].key), cols[c].kind, cell, sizeof(cell));
            size_t n = strlen(cell);
            if (n > width[c])
                width[c] = n;
        }
    }
    for (size_t c = 0; c < ncols; c++) {
        int w = (int)width[c];
        if (cols[c].kind == CLI_COL_BYTES)
            fprintf(f, "%*s", w, cols[c].header);
        else
            fprintf(f, "%-*s", c + 1 < ncols ? w : 0, cols[c].header);
        fputs(c + 1 < ncols ? "  " : "\n", f);
    }
    for (size_t r = 0; r < nrows; r++) {
        const json_t *row = json_array_get(rows, r);
        for (size_t c = 0; c < ncols; c++) {
            cli_cell(json_object_get(row, cols[c].key), cols[c].kind, cell, sizeof(cell));
            /* numbers and sizes align right, text left */
            bool right =
                cols[c].kind == CLI_COL_BYTES || json_is_number(json_object_get(row, cols[c].key));
            if (c + 1 < ncols)
                fprintf(f, right ? "%*s  " : "%-*s  ", (int)width[c], cell);
            else if (right)
                fprintf(f, "%*s\n", (int)width[c], cell);
            else
                fprintf(f, "%s\n", cell);
        }
    }
    if (nrows == 0)
        fprintf(f, "(none)\n");
}

void cli_render_object(FILE *f, cli_format fmt, const json_t *obj, const struct cli_col *cols,
                       size_t ncols)
{
    if (fmt == CLI_FMT_JSON) {
        dump_json(f, obj);
        return;
    }
    char cell[CLI_CELL_MAX];
    size_t w = 0;
    if (cols != NULL) {
        for (size_t c = 0; c < ncols; c++)
            if (strlen(cols[c].header) > w)
                w = strlen(cols[c].header);
        for (size_t c = 0; c < ncols; c++) {
            cli_cell(json_object_get(obj, cols[c].key), cols[c].kind, cell, sizeof(cell));
            fprintf(f, "%-*s  %s\n", (int)w, cols[c].header, cell);
        }
        return;
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        if (strlen(key) > w)
            w = strlen(key);
    }
    json_object_foreach((json_t *)obj, key, v)
    {
        cli_cell(v, CLI_COL_STR, cell, sizeof(cell));
        fprintf(f, "%-*s  %s\n", (int)w, key, cell);
    }
}

int cli_fail(const struct cli_opts *o, int err, int exit_code, const char *fmt, ...)
{
    char msg[CLI_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int code = exit_code != 0 ? exit_code : cli_exit_code(err);
    if (code == CLI_EXIT_OK)
        code = CLI_EXIT_FAIL;
    fprintf(stderr, "curve: %s\n", msg);
    if (o != NULL && o->format == CLI_FMT_JSON) {
        json_t *j = json_pack("{s:b, s:i, s:i, s:s, s:s}", "ok", 0, "exit", code, "code", err,
                              "error", err < 0 ? curve_errname(err) : "", "message", msg);
        if (j != NULL) {
            dump_json(stdout, j);
            json_decref(j);
        }
    }
    return code;
}
