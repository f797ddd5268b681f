/*
 * search.c — the query language and the indexed text of a message (see
 * search.h).
 *
 * The parser never hands the caller's characters to a backend's query
 * syntax: each term's text is rebuilt from tokens of ASCII letters and
 * digits and bytes >= 0x80 (whole UTF-8 sequences: the query is checked
 * to be UTF-8 first), separated by single spaces. The backends quote
 * those (store/sqlite/search_sqlite.c, store/postgres/search_pg.c).
 * Non-ASCII punctuation stays inside tokens here; both backends' own
 * tokenizers split it again where they would split the indexed text.
 */
#include <stdbool.h>
#include <string.h>

#include "core/search.h"
#include "parley/parley.h"
#include "util/utf8.h"

static bool is_token_byte(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

/* Append the tokens of s[0..n) to term (space-separated); false if none. */
static bool tokens(const char *s, size_t n, char *term, size_t cap)
{
    size_t used = 0;
    bool any = false;
    size_t i = 0;
    while (i < n) {
        while (i < n && !is_token_byte((unsigned char)s[i]))
            i++;
        size_t start = i;
        while (i < n && is_token_byte((unsigned char)s[i]))
            i++;
        if (i == start)
            break;
        size_t len = i - start;
        if (used + (any ? 1 : 0) + len + 1 > cap)
            return any; /* cannot happen: a term is shorter than q */
        if (any)
            term[used++] = ' ';
        memcpy(term + used, s + start, len);
        used += len;
        any = true;
    }
    term[used] = '\0';
    return any;
}

int parley_search_parse(const char *q, parley_search_query_t *out, const char **why)
{
    size_t n = q ? strlen(q) : 0;
    memset(out, 0, sizeof *out);
    if (n == 0) {
        *why = "q is required: the words to search for";
        return PARLEY_EINVAL;
    }
    if (n > PARLEY_SEARCH_QUERY_MAX) {
        *why = "q is too long: at most 1024 bytes";
        return PARLEY_EINVAL;
    }
    if (!parley_utf8_is_valid(q, n)) {
        *why = "q must be UTF-8 text";
        return PARLEY_EINVAL;
    }
    size_t i = 0;
    while (i < n) {
        while (i < n && (q[i] == ' ' || q[i] == '\t' || q[i] == '\n' || q[i] == '\r'))
            i++;
        if (i >= n)
            break;
        const char *start;
        size_t len;
        parley_search_kind_t kind;
        if (q[i] == '"') {
            const char *close = memchr(q + i + 1, '"', n - i - 1);
            if (!close) {
                *why = "q has an unclosed quote: a phrase is \"between double quotes\"";
                return PARLEY_EINVAL;
            }
            start = q + i + 1;
            len = (size_t)(close - start);
            i = (size_t)(close - q) + 1;
            kind = PARLEY_SEARCH_PHRASE;
            if (i < n && q[i] == '*') {
                kind = PARLEY_SEARCH_PREFIX;
                while (i < n && q[i] == '*')
                    i++;
            }
        } else {
            start = q + i;
            while (i < n && q[i] != ' ' && q[i] != '\t' && q[i] != '\n' && q[i] != '\r' &&
                   q[i] != '"')
                i++;
            len = (size_t)(q + i - start);
            kind = len > 0 && start[len - 1] == '*' ? PARLEY_SEARCH_PREFIX : PARLEY_SEARCH_WORD;
        }
        if (out->nterms == PARLEY_SEARCH_TERMS_MAX) {
            /* Only terms with words count: look for one more. */
            char scratch[PARLEY_SEARCH_QUERY_MAX + 1];
            if (tokens(start, len, scratch, sizeof scratch)) {
                *why = "q has too many terms: at most 16";
                return PARLEY_EINVAL;
            }
            continue;
        }
        if (tokens(start, len, out->terms[out->nterms].text, sizeof out->terms[0].text))
            out->terms[out->nterms++].kind = kind;
    }
    if (out->nterms == 0) {
        *why = "q has no words to search for (letters or digits)";
        return PARLEY_EINVAL;
    }
    return 0;
}

static int put_text(parley_buf_t *out, const char *s)
{
    if (!s || !*s)
        return 0;
    int rc = out->len ? parley_buf_putc(out, '\n') : 0;
    return rc ? rc : parley_buf_puts(out, s);
}

int parley_search_text(json_t *content, parley_buf_t *out)
{
    if (json_is_string(content))
        return put_text(out, json_string_value(content));
    if (!json_is_array(content))
        return 0;
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        int rc = 0;
        if (json_is_string(part))
            rc = put_text(out, json_string_value(part));
        else if (json_is_object(part) && json_is_string(json_object_get(part, "text")))
            rc = put_text(out, json_string_value(json_object_get(part, "text")));
        if (rc)
            return rc;
    }
    return 0;
}

int parley_search_index(parley_db_t *db, const char *conv_id, const char *msg_id, int64_t seq,
                        json_t *content)
{
    parley_buf_t text;
    parley_buf_init(&text, SIZE_MAX / 2);
    int rc = parley_search_text(content, &text);
    if (rc == 0 && text.len > 0)
        rc = parley_db_search_put(db, conv_id, msg_id, seq, text.data);
    parley_buf_free(&text);
    return rc;
}

/* One stored message of a reindex: [seq, id, content]. */
static int on_stored_message(void *arg, int n, const char *const *vals, const size_t *lens)
{
    json_t *out = arg;
    if (n < 2 || !vals[0] || !vals[1])
        return 0;
    json_t *m = json_loadb(vals[1], lens[1], 0, NULL);
    const char *id = json_string_value(json_object_get(m, "id"));
    json_t *content = json_object_get(m, "content");
    int rc = 0;
    if (id && content &&
        json_array_append_new(
            out, json_pack("[I, s, O]", (json_int_t)strtoll(vals[0], NULL, 10), id, content)))
        rc = PARLEY_ENOMEM;
    json_decref(m);
    return rc;
}

int parley_search_reindex(parley_db_t *db, const char *conv_id)
{
    parley_buf_t from;
    json_t *found = json_array();
    int rc = found ? 0 : PARLEY_ENOMEM;
    parley_buf_init(&from, SIZE_MAX / 2);
    /* conv_id quoted as an SQL string (the import takes it from a file). */
    parley_buf_t q;
    parley_buf_init(&q, SIZE_MAX / 2);
    for (const char *p = conv_id; rc == 0 && *p; p++)
        rc = *p == '\'' ? parley_buf_puts(&q, "''") : parley_buf_putc(&q, *p);
    if (rc == 0)
        rc = parley_buf_printf(
            &from,
            "chunks c JOIN streams s ON s.id = c.stream_id WHERE NOT s.deleted AND (s.path = "
            "'_parley/conv/%s' OR substr(s.path, 1, %zu) = '_parley/convbranch/%s/') AND EXISTS "
            "(SELECT 1 FROM conversations v WHERE v.id = '%s' AND NOT v.deleted)",
            q.data ? q.data : "", strlen("_parley/convbranch/") + strlen(conv_id) + 1,
            q.data ? q.data : "", q.data ? q.data : "");
    if (rc == 0)
        rc = parley_db_table_scan(db, from.data, "c.end_pos, c.data", "s.id, c.end_pos",
                                  on_stored_message, found);
    size_t i;
    json_t *m;
    json_array_foreach(found, i, m)
    {
        if (rc)
            break;
        rc = parley_search_index(db, conv_id, json_string_value(json_array_get(m, 1)),
                                 json_integer_value(json_array_get(m, 0)), json_array_get(m, 2));
    }
    json_decref(found);
    parley_buf_free(&q);
    parley_buf_free(&from);
    return rc;
}
