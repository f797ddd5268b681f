/*
 * fuzz_mergepatch.c — libFuzzer harness for JSON Merge Patch
 * (parley_mergepatch_apply, src/codec/mergepatch.c).
 *
 * The input is two JSON texts separated by the first newline: the target,
 * then the patch (which may span more lines). Both are parsed with
 * parley_canonjson_parse() and a depth limit of FUZZ_DEPTH, as the server
 * parses a stored document and a PATCH body; inputs that do not parse are
 * skipped. The harness aborts when one of these invariants breaks:
 *
 *   1. The result is not NULL (NULL means only out of memory).
 *   2. The result equals that of a straightforward transcription of
 *      RFC 7386 §2's MergePatch(Target, Patch) pseudo-code, written here
 *      independently of the module.
 *   3. Applying a patch is idempotent: apply(apply(t, p), p) == apply(t, p).
 *   4. The inputs are not modified, and the result shares no value with
 *      them: after the result is scrambled in place (every object emptied,
 *      every array cleared, depth first), target and patch still
 *      canonicalise to the bytes they had before.
 *   5. A patch that is an object yields an object, in which every member the
 *      patch sets to null is absent; a patch that is not an object is the
 *      result, whatever the target.
 *   6. target NULL (an absent document) is the same as target null.
 *
 * fuzz-sources: src/codec/mergepatch.c src/codec/canonjson.c src/util/buf.c
 * fuzz-libs: -ljansson -lcrypto
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "codec/canonjson.h"
#include "codec/mergepatch.h"
#include "harness.h"
#include "parley/parley.h"

#define FUZZ_DEPTH 32 /* depth limit for both texts */

/*
 * RFC 7386 §2, line for line:
 *   define MergePatch(Target, Patch):
 *     if Patch is an Object:
 *       if Target is not an Object:
 *         Target = {} # Ignore the contents and set it to an empty Object
 *       for each Name/Value pair in Patch:
 *         if Value is null:
 *           if Name exists in Target:
 *             remove the Name/Value pair from Target
 *         else:
 *           Target[Name] = MergePatch(Target[Name], Value)
 *       return Target
 *     else:
 *       return Patch
 * Returns a new reference built from deep copies.
 */
static json_t *reference(json_t *target, json_t *patch)
{
    if (!json_is_object(patch))
        return json_deep_copy(patch);
    json_t *t = json_is_object(target) ? json_deep_copy(target) : json_object();
    FUZZ_CHECK(t != NULL);
    const char *name;
    size_t name_len;
    json_t *value;
    json_object_keylen_foreach(patch, name, name_len, value)
    {
        if (json_is_null(value)) {
            json_object_deln(t, name, name_len);
        } else {
            json_t *merged = reference(json_object_getn(t, name, name_len), value);
            FUZZ_CHECK(merged != NULL);
            FUZZ_CHECK(json_object_setn_new(t, name, name_len, merged) == 0);
        }
    }
    return t;
}

/* The canonical bytes of v (a new string the caller frees). */
static char *canon(json_t *v)
{
    char *s = NULL;
    size_t n = 0;
    FUZZ_CHECK(parley_canonjson_dump(v, &s, &n) == 0);
    return s;
}

static bool same(json_t *a, json_t *b)
{
    char *x = canon(a), *y = canon(b);
    bool eq = strcmp(x, y) == 0;
    free(x);
    free(y);
    return eq;
}

/* Invariant 4: tear v down in place, depth first. */
static void scramble(json_t *v)
{
    if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v); i++)
            scramble(json_array_get(v, i));
        json_array_clear(v);
    } else if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach(v, k, m) scramble(m);
        json_object_clear(v);
    } else if (json_is_string(v)) {
        json_string_set(v, "scrambled");
    } else if (json_is_integer(v)) {
        json_integer_set(v, -12345);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl)
        return 0;
    size_t tlen = (size_t)(nl - data);
    json_t *target = NULL, *patch = NULL;
    if (parley_canonjson_parse((const char *)data, tlen, FUZZ_DEPTH, &target, NULL) != 0)
        return 0;
    if (parley_canonjson_parse((const char *)nl + 1, size - tlen - 1, FUZZ_DEPTH, &patch, NULL) !=
        0) {
        json_decref(target);
        return 0;
    }
    char *target_before = canon(target), *patch_before = canon(patch);

    /* 1. and 2. */
    json_t *result = parley_mergepatch_apply(target, patch);
    FUZZ_CHECK(result != NULL);
    json_t *expected = reference(target, patch);
    FUZZ_CHECK(same(result, expected));

    /* 3. */
    json_t *twice = parley_mergepatch_apply(result, patch);
    FUZZ_CHECK(twice != NULL);
    FUZZ_CHECK(same(twice, result));

    /* 5. */
    if (json_is_object(patch)) {
        FUZZ_CHECK(json_is_object(result));
        const char *k;
        size_t klen;
        json_t *m;
        json_object_keylen_foreach(patch, k, klen, m)
        {
            if (json_is_null(m))
                FUZZ_CHECK(json_object_getn(result, k, klen) == NULL);
        }
    } else {
        FUZZ_CHECK(same(result, patch));
    }

    /* 6. */
    json_t *from_absent = parley_mergepatch_apply(NULL, patch);
    json_t *null_target = json_null();
    json_t *from_null = parley_mergepatch_apply(null_target, patch);
    FUZZ_CHECK(from_absent != NULL && from_null != NULL);
    FUZZ_CHECK(same(from_absent, from_null));

    /* 4. Scrambling every result leaves the inputs as they were. */
    scramble(result);
    scramble(twice);
    scramble(from_absent);
    scramble(from_null);
    char *target_after = canon(target), *patch_after = canon(patch);
    FUZZ_CHECK(strcmp(target_before, target_after) == 0);
    FUZZ_CHECK(strcmp(patch_before, patch_after) == 0);

    free(target_before);
    free(patch_before);
    free(target_after);
    free(patch_after);
    json_decref(result);
    json_decref(twice);
    json_decref(expected);
    json_decref(from_absent);
    json_decref(from_null);
    json_decref(null_target);
    json_decref(target);
    json_decref(patch);
    return 0;
}
