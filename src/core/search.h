/*
 * search.h — search over a user's conversations: the query language, the
 * text of a message that is indexed, and indexing it in the message's
 * transaction (GET /v1/search, api/search.c).
 *
 * The query language (q), the same on both backends:
 *   - words separated by spaces, all of which must match (AND);
 *   - word*   a prefix: matches words that start with it;
 *   - "a b c" a phrase: the words adjacent and in this order ("a b"* makes
 *     its last word a prefix).
 * A word is a run of letters and digits; every other character (ASCII
 * punctuation, operators such as OR, NOT, -, +, parentheses) only
 * separates words, so "e-mail" is the phrase "e mail" and no input is a
 * syntax error but an unclosed quote. Matching ignores case and (where the
 * backend can) accents. q is 1 to PARLEY_SEARCH_QUERY_MAX bytes of UTF-8
 * with at most PARLEY_SEARCH_TERMS_MAX terms and at least one word.
 *
 * What is indexed: a conversation's title (by the store, see store.h's
 * search_put) and each message's text: a string content itself, or, for a
 * list of parts, each part that is a string and each part's "text" member
 * that is a string, joined by newlines. Other content (numbers, objects
 * without text, a tool call's arguments) is not searchable.
 *
 * Threads: parse and text are pure (any thread); index on the writer.
 */
#ifndef PARLEY_CORE_SEARCH_H
#define PARLEY_CORE_SEARCH_H

#include <jansson.h>
#include <stdint.h>

#include "store/store.h"
#include "util/buf.h"

/* Parse q into *out. 0, or PARLEY_EINVAL with *why (a static message) for
 * a query that is empty, too long, not UTF-8, has an unclosed quote, no
 * word or too many terms. */
int parley_search_parse(const char *q, parley_search_query_t *out, const char **why);

/* The indexed text of a message's content (borrowed) appended to out
 * (nothing for content without text). 0 or PARLEY_ENOMEM/ETOOBIG. */
int parley_search_text(json_t *content, parley_buf_t *out);

/* Index message (conv_id, msg_id, seq) with content (borrowed) in the
 * writer's transaction; content without text is not indexed. Writer. */
int parley_search_index(parley_db_t *db, const char *conv_id, const char *msg_id, int64_t seq,
                        json_t *content);

/* Index every message stored for conversation conv_id (its main log and
 * its branch logs) that the index lacks because it was written without
 * the message rules (an import writes rows): call it once for a
 * conversation whose messages are not indexed yet, in the writer's
 * transaction. A deleted conversation is left out. Writer. */
int parley_search_reindex(parley_db_t *db, const char *conv_id);

#endif
