/*
 * mergepatch.h — JSON Merge Patch (RFC 7386) on jansson values.
 *
 * `PATCH /v1/documents/{collection}/{id}` sends a merge patch: an object
 * whose members replace the document's members of the same name, recurse
 * into them when both are objects, and remove them when the patch value is
 * null. A patch that is not an object replaces the whole target. This module
 * computes the result; whether the result is an acceptable document (an
 * object, under the size limit) is the caller's decision.
 *
 * Invariants:
 *   1. The inputs are never modified, and the result shares no value with
 *      them: it is a deep copy, so the caller may edit it freely while other
 *      threads hold references to the inputs.
 *   2. Arrays are values, not merged element by element (RFC 7386 §2).
 *   3. null in a patch object means "remove"; a null patch (not inside an
 *      object) is itself the result, as the RFC's algorithm says.
 *
 * Pure function, thread-safe (given inputs that no thread is modifying).
 */
#ifndef PARLEY_CODEC_MERGEPATCH_H
#define PARLEY_CODEC_MERGEPATCH_H

#include <jansson.h>

/*
 * Apply patch (borrowed) to target (borrowed; NULL is treated as absent,
 * like a missing member). Returns a new reference the caller must
 * json_decref(), or NULL when memory runs out or patch is NULL. Recursion
 * follows the patch's nested objects only, so its depth is bounded by the
 * patch's (which the request parser bounds). Any thread.
 */
json_t *parley_mergepatch_apply(json_t *target, json_t *patch);

#endif
