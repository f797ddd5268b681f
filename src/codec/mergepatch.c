/*
 * mergepatch.c — RFC 7386 JSON Merge Patch (see mergepatch.h).
 *
 * The RFC's algorithm, which this file follows line by line:
 *
 *   define MergePatch(Target, Patch):
 *     if Patch is an Object:
 *       if Target is not an Object:
 *         Target = {}              # ignore the contents and set it to {}
 *       for each Name/Value pair in Patch:
 *         if Value is null:
 *           if Name exists in Target:
 *             remove the Name/Value pair from Target
 *         else:
 *           Target[Name] = MergePatch(Target[Name], Value)
 *       return Target
 *     else:
 *       return Patch
 *
 * The RFC edits Target in place; here Target is deep-copied once, up front,
 * and the copy is edited in place, so the caller's value stays untouched and
 * nested objects are not copied again at each level. A non-object Patch is
 * deep-copied rather than shared. Member names are handled with their lengths, so a name
 * containing U+0000 (possible in a value built with json_object_setn) is
 * merged like any other.
 */
#include "codec/mergepatch.h"

/*
 * MergePatch(target, patch) where target is a new reference owned by this
 * call (consumed, edited in place, possibly NULL) and patch is borrowed.
 * Returns a new reference, or NULL when memory runs out.
 */
static json_t *merge(json_t *target, json_t *patch)
{
    if (!json_is_object(patch)) {
        json_decref(target);
        return json_deep_copy(patch);
    }
    if (!json_is_object(target)) {
        json_decref(target);
        target = json_object();
        if (!target)
            return NULL;
    }

    const char *name;
    size_t name_len;
    json_t *value;
    json_object_keylen_foreach(patch, name, name_len, value)
    {
        if (json_is_null(value)) {
            json_object_deln(target, name, name_len); /* absent is not an error */
            continue;
        }
        /* merge() consumes a reference: hand it one to the member. */
        json_t *member = json_incref(json_object_getn(target, name, name_len));
        json_t *merged = merge(member, value);
        if (!merged || json_object_setn_new_nocheck(target, name, name_len, merged) != 0)
            goto out_free_target; /* setn_new releases merged on failure */
    }
    return target;

out_free_target:
    json_decref(target);
    return NULL;
}

json_t *parley_mergepatch_apply(json_t *target, json_t *patch)
{
    if (!patch)
        return NULL;
    /* Copy the target only when the patch will edit it. */
    json_t *copy = NULL;
    if (json_is_object(patch) && json_is_object(target)) {
        copy = json_deep_copy(target);
        if (!copy)
            return NULL;
    }
    return merge(copy, patch);
}
