/*
 * message.c — checking and parsing a message body (see message.h).
 *
 * The checks run in a fixed order and the first failure is the answer, so
 * a body with several faults always gets the same error: not an object,
 * an unknown field, role, content, metadata, process, max_attempts.
 */
#include <string.h>

#include "codec/canonjson.h"
#include "core/message.h"
#include "core/session.h" /* PARLEY_SESSION_MAX_ATTEMPTS only */
#include "parley/parley.h"

bool parley_message_role_is_valid(const char *role)
{
    static const char *const roles[] = {"user", "assistant", "system", "tool"};
    for (size_t i = 0; role && i < sizeof roles / sizeof roles[0]; i++)
        if (strcmp(role, roles[i]) == 0)
            return true;
    return false;
}

static int refuse(parley_outcome_t *out, const char *why)
{
    parley_outcome_refuse(out, PARLEY_EINVAL, "invalid_message", why, NULL);
    return PARLEY_EINVAL;
}

int parley_message_parse(json_t *body, int64_t default_attempts, parley_message_t *msg,
                         parley_outcome_t *out)
{
    static const char *const allowed[] = {"role",    "content",      "metadata",
                                          "process", "max_attempts", NULL};
    const char *bad = NULL;
    parley_outcome_init(out);
    memset(msg, 0, sizeof *msg);
    if (!json_is_object(body))
        return refuse(out,
                      "the body must be a JSON object: {\"role\": \"user\", \"content\": ...}");
    if ((bad = parley_canonjson_stranger(body, allowed))) {
        parley_outcome_refuse(out, PARLEY_EINVAL, "invalid_message",
                              "unknown field (see details.field): a message takes role, content, "
                              "metadata, process, max_attempts and branch",
                              json_pack("{s:s}", "field", bad));
        return PARLEY_EINVAL;
    }
    json_t *role = json_object_get(body, "role");
    json_t *content = json_object_get(body, "content");
    json_t *meta = json_object_get(body, "metadata");
    json_t *process = json_object_get(body, "process");
    json_t *attempts = json_object_get(body, "max_attempts");
    if (!json_is_string(role) || !parley_message_role_is_valid(json_string_value(role)))
        return refuse(out, "role must be one of \"user\", \"assistant\", \"system\", \"tool\"");
    if (!content)
        return refuse(out, "content is required (any JSON value: a string, or a list of parts)");
    if (meta && !json_is_object(meta) && !json_is_null(meta))
        return refuse(out, "metadata must be a JSON object");
    if (process && !json_is_boolean(process))
        return refuse(out, "process must be true or false");
    msg->process = process && json_is_true(process);
    msg->max_attempts = default_attempts;
    if (attempts) {
        if (!msg->process || !json_is_integer(attempts) || json_integer_value(attempts) < 1 ||
            json_integer_value(attempts) > PARLEY_SESSION_MAX_ATTEMPTS)
            return refuse(out, "max_attempts is a whole number from 1 to 100, and only goes "
                               "with \"process\": true");
        msg->max_attempts = json_integer_value(attempts);
    }
    msg->role = json_string_value(role);
    msg->content = content;
    msg->metadata = json_is_object(meta) ? meta : NULL;
    return 0;
}
